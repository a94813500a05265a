//! The carbon plaintext decoder on arbitrary bytes, as a UDP datagram or a TCP stream would
//! deliver them: split into lines, parse each. Never panics; an accepted line has a non-empty
//! name without spaces, tabs or newlines, within the name limit.
#![no_main]

use blueflood_forward::protocol::line::{is_blank, parse_line, split_lines};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in split_lines(data) {
        let blank = is_blank(line);
        match parse_line(line, 256) {
            Ok(p) => {
                assert!(!blank, "a blank line parsed");
                assert!(!p.name.is_empty(), "empty name accepted");
                assert!(p.name.len() <= 256, "name over the limit");
                assert!(
                    !p.name.contains([' ', '\t', '\n']),
                    "separator inside a name: {:?}",
                    p.name
                );
            }
            Err(e) => {
                let _ = e.reason();
            }
        }
    }
});
