//! Shared support for integration tests: the Blueflood and Keystone test doubles and small
//! helpers to feed the forwarder (carbon pickle frames, raw TCP sends, clocks, compression).
//! Each test crate uses a subset, hence the blanket `dead_code` allowance.
#![allow(dead_code)]

pub mod blueflood;
pub mod keystone;

use std::io::Write;
use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Wall-clock now in epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// Wall-clock now in epoch seconds (what carbon timestamps are), as f64.
pub fn now_secs_f64() -> f64 {
    now_ms() as f64 / 1000.0
}

/// Connects, writes all of `bytes`, then half-closes (shutdown write) so the server sees EOF.
/// It does not wait for the server to read: assert on effects with a wait-for helper.
pub async fn send_tcp(addr: SocketAddr, bytes: &[u8]) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    stream.shutdown().await.expect("shutdown write");
}

/// Carbon line protocol: one `name value timestamp\n` line per point `(name, ts, value)`.
pub fn line_payload(points: &[(&str, f64, f64)]) -> Vec<u8> {
    let mut out = String::new();
    for (name, ts, value) in points {
        out.push_str(&format!("{name} {value} {ts}\n"));
    }
    out.into_bytes()
}

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

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// zlib-wrapped deflate, which is what HTTP `Content-Encoding: deflate` means.
pub fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("deflate");
    enc.finish().expect("deflate")
}
