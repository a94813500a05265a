//! The spool record decoder on arbitrary bytes, as a damaged segment would hold them: decode
//! record after record until one fails. Never panics; whatever decodes re-encodes (in the
//! version it was read in) to exactly the bytes it came from, and its size is what
//! `record_len` says.
#![no_main]

use blueflood_forward::spool::record::{decode, encode_record, record_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A limit well inside the input sizes the fuzzer tries, so `TooLarge` is reached too.
    let max_record_bytes = 4096;
    let mut rest = data;
    while let Ok((rec, used)) = decode(rest, max_record_bytes) {
        let mut again = Vec::new();
        encode_record(&rec, &mut again);
        assert_eq!(again, rest[..used], "re-encoding changed the bytes");
        assert_eq!(record_len(&rec), used);
        rest = &rest[used..];
    }
});
