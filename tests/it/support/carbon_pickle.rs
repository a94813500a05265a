//! Writes carbon pickle streams the way CPython's pickler and Graphite's carbon-relay do, and
//! splits recorded streams into frames. Std only, so the integration tests, the criterion
//! benches and the load generator all include this one file (`#[path]`) instead of each
//! keeping a copy.
#![allow(dead_code)]

/// A carbon pickle frame as carbon-relay sends it: 4-byte big-endian length, then a protocol 2
/// pickle of `[(name, (ts, value)), ...]` for points given as `(name, ts, value)`.
///
/// Opcodes follow CPython's pickler exactly: memo ids via BINPUT (LONG_BINPUT past 255), list
/// items batched in groups of 1000 with MARK..APPENDS, a single trailing item with APPEND.
pub fn pickle_frame(points: &[(&str, f64, f64)]) -> Vec<u8> {
    let payload = pickle_payload(points);
    let mut frame = Vec::with_capacity(payload.len() + 4);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// The pickle payload of [`pickle_frame`] without the length prefix.
pub fn pickle_payload(points: &[(&str, f64, f64)]) -> Vec<u8> {
    const PROTO: u8 = 0x80;
    const EMPTY_LIST: u8 = b']';
    const MARK: u8 = b'(';
    const BINUNICODE: u8 = b'X';
    const BINFLOAT: u8 = b'G';
    const TUPLE2: u8 = 0x86;
    const APPEND: u8 = b'a';
    const APPENDS: u8 = b'e';
    const STOP: u8 = b'.';
    const BATCH: usize = 1000; // CPython's _BATCHSIZE

    let mut out = vec![PROTO, 2, EMPTY_LIST];
    let mut memo: u32 = 0;
    let mut put = |out: &mut Vec<u8>| {
        if memo < 256 {
            out.extend_from_slice(&[b'q', memo as u8]);
        } else {
            out.push(b'r');
            out.extend_from_slice(&memo.to_le_bytes());
        }
        memo += 1;
    };
    put(&mut out);
    for chunk in points.chunks(BATCH) {
        if chunk.len() > 1 {
            out.push(MARK);
        }
        for (name, ts, value) in chunk {
            out.push(BINUNICODE);
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            put(&mut out);
            out.push(BINFLOAT);
            out.extend_from_slice(&ts.to_be_bytes());
            out.push(BINFLOAT);
            out.extend_from_slice(&value.to_be_bytes());
            out.push(TUPLE2);
            put(&mut out);
            out.push(TUPLE2);
            put(&mut out);
        }
        out.push(if chunk.len() > 1 { APPENDS } else { APPEND });
    }
    out.push(STOP);
    out
}

/// The payloads (length prefixes stripped) of a stream of frames; a cut last frame is left out.
pub fn split_frames(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = stream;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(payload) = rest.get(4..4 + len) else {
            break;
        };
        out.push(payload.to_vec());
        rest = &rest[4 + len..];
    }
    out
}
