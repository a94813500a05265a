//! Carbon plaintext protocol: `name value timestamp`.
