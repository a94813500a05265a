//! Unit tests of `keys`.

use super::*;

#[test]
fn keys_are_unique_snake_case() {
    let mut seen = std::collections::BTreeSet::new();
    for k in KEYS {
        assert!(seen.insert(k.key), "duplicate key {}", k.key);
        assert!(
            k.key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()),
            "{} is not snake_case",
            k.key
        );
        assert!(
            !k.key.ends_with(FILE_SUFFIX),
            "{} clashes with *_file",
            k.key
        );
    }
}

#[test]
fn secret_keys_have_no_default() {
    for k in KEYS.iter().filter(|k| k.secret) {
        assert_eq!(k.default, None, "{} would show a secret default", k.key);
    }
}

#[test]
fn names() {
    let k = find("auth_url").unwrap();
    assert_eq!(k.long(), "auth-url");
    assert_eq!(k.env_var(), "BLUEFLOOD_FORWARD_AUTH_URL");
    assert_eq!(k.env_file_var(), "BLUEFLOOD_FORWARD_AUTH_URL_FILE");
    assert_eq!(
        find_with_file("key_file").map(|(k, f)| (k.key, f)),
        Some(("key", true))
    );
    assert!(find_with_file("nope_file").is_none());
}

#[test]
fn suggestions() {
    assert_eq!(suggest("tennant").as_deref(), Some("tenant"));
    assert_eq!(suggest("auth-url").as_deref(), Some("auth_url"));
    assert_eq!(suggest("kye_file").as_deref(), Some("key_file"));
    assert_eq!(suggest("completely_different"), None);
}

#[test]
fn each_key_is_named_by_its_variant() {
    assert_eq!(Key::ALL.len(), KEYS.len());
    for (i, (key, variant)) in Key::ALL.iter().enumerate() {
        let camel: String = key
            .name()
            .split('_')
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(&camel, variant, "Key::{variant} names {:?}", key.name());
        assert!(std::ptr::eq(key.spec(), &KEYS[i]), "Key::{variant}");
        assert_eq!(key.spec().key, key.name());
    }
}
