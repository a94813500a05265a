//! The carbon pickle frame decoder on arbitrary bytes (one frame's payload): never panics,
//! never runs away, and keeps its contract: a refused frame leaves the output untouched, an
//! accepted one yields only names within the limit.
#![no_main]

use blueflood_forward::protocol::pickle::{PickleLimits, decode_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = PickleLimits::default();
    let mut out = Vec::new();
    match decode_frame(data, &limits, &mut out) {
        Ok(()) => {
            for p in out.iter().flatten() {
                assert!(p.name.len() <= limits.max_name_bytes, "name over the limit");
            }
        }
        Err(e) => {
            assert!(out.is_empty(), "a refused frame emitted points");
            let _ = e.reason();
        }
    }
    // Tight limits exercise the bound checks on the same input.
    let tight = PickleLimits {
        max_depth: 3,
        max_items: 64,
        max_memo: 8,
        max_name_bytes: 16,
    };
    let mut out = vec![Ok(blueflood_forward::protocol::RawPoint {
        name: "sentinel".into(),
        timestamp: 0.0,
        value: 0.0,
    })];
    if decode_frame(data, &tight, &mut out).is_err() {
        assert_eq!(
            out.len(),
            1,
            "a refused frame changed what was already in the output"
        );
    } else {
        for p in out.iter().skip(1).flatten() {
            assert!(p.name.len() <= 16, "name over the tight limit");
        }
    }
});
