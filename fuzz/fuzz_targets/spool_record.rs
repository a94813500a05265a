//! The spool record decoder on arbitrary bytes, as a damaged segment would hold them: decode
//! record after record until one fails. Never panics; whatever decodes re-encodes to exactly
//! the bytes it came from, and its size is what `encoded_len` says.
#![no_main]

use blueflood_forward::spool::record::{decode, encode, encoded_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A limit well inside the input sizes the fuzzer tries, so `TooLarge` is reached too.
    let max_record_bytes = 4096;
    let mut rest = data;
    while let Ok((rec, used)) = decode(rest, max_record_bytes) {
        let mut again = Vec::new();
        encode(&rec.points, rec.written_ms, &mut again);
        assert_eq!(again, rest[..used], "re-encoding changed the bytes");
        assert_eq!(encoded_len(&rec.points), used);
        rest = &rest[used..];
    }
});
