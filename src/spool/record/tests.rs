//! Unit tests of `record`.

use proptest::prelude::*;

use super::*;

const MAX: usize = 1 << 20;

fn pt(name: &str, timestamp_ms: i64, value: f64) -> Datapoint {
    Datapoint::new(name, timestamp_ms, value)
}

fn enc(points: &[Datapoint], written_ms: u64) -> Vec<u8> {
    let mut out = Vec::new();
    encode(points, written_ms, &mut out);
    out
}

/// Equality that tells NaN payloads and -0.0 apart, as the bytes on disk do.
fn same_bits(a: &[Datapoint], b: &[Datapoint]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.name == y.name
                && x.timestamp_ms == y.timestamp_ms
                && x.value.to_bits() == y.value.to_bits()
        })
}

fn round_trip(points: &[Datapoint], written_ms: u64) {
    let bytes = enc(points, written_ms);
    assert_eq!(bytes.len(), encoded_len(points));
    let (rec, used) = decode(&bytes, MAX).unwrap();
    assert_eq!(used, bytes.len());
    assert_eq!(rec.written_ms, written_ms);
    assert!(
        same_bits(&rec.points, points),
        "{:?} != {points:?}",
        rec.points
    );
}

#[test]
fn examples_round_trip() {
    round_trip(&[], 0);
    round_trip(&[pt("", 0, 0.0)], u64::MAX);
    round_trip(&[pt("a.b.c", 1_700_000_000_000, 1.5)], 1_700_000_000_123);
    round_trip(&[pt("métrique.温度.😀", -1, -0.0)], 7);
    round_trip(
        &[
            pt(&"x".repeat(127), i64::MIN, f64::MIN_POSITIVE),
            pt(&"y".repeat(128), i64::MAX, f64::MAX),
            pt(
                &"z".repeat(20_000),
                -86_400_000,
                f64::from_bits(0x7ff8_dead_beef_0001),
            ),
            pt("inf", 0, f64::NEG_INFINITY),
        ],
        42,
    );
}

#[test]
fn layout_is_the_documented_one() {
    let stamp = Stamp {
        written_ms: 0x0102_0304_0506_0708,
        arrived_ms: 0x1112_1314_1516_1718,
    };
    let mut bytes = Vec::new();
    encode(&[pt(&"n".repeat(200), -2, 2.0)], stamp, &mut bytes);
    let payload_len = 1 + 8 + 8 + 4 + 2 + 200 + 8 + 8;
    assert_eq!(&bytes[0..4], &(payload_len as u32).to_le_bytes());
    assert_eq!(
        &bytes[4..8],
        &crc32c::crc32c(&bytes[HEADER_BYTES..]).to_le_bytes()
    );
    assert_eq!(bytes[8], VERSION);
    assert_eq!(&bytes[9..17], &0x0102_0304_0506_0708u64.to_le_bytes());
    assert_eq!(&bytes[17..25], &0x1112_1314_1516_1718u64.to_le_bytes());
    assert_eq!(&bytes[25..29], &1u32.to_le_bytes());
    // 200 = 0b1_1001000: low seven bits with the continuation bit, then 1.
    assert_eq!(&bytes[29..31], &[0xc8, 0x01]);
    assert_eq!(&bytes[231..239], &(-2i64).to_le_bytes());
    assert_eq!(&bytes[239..247], &2.0f64.to_bits().to_le_bytes());
    assert_eq!(bytes.len(), HEADER_BYTES + payload_len);
}

#[test]
fn varint_lengths_match_the_encoder() {
    for v in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        assert_eq!(out.len(), varint_len(v), "{v}");
        assert_eq!(Cursor(&out).varint(), Ok(v));
    }
}

/// Builds a record around a hand-made payload, with a correct checksum, so the payload checks
/// are reached.
fn with_payload(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn payload_head(count: u32) -> Vec<u8> {
    let mut p = vec![VERSION];
    p.extend_from_slice(&5u64.to_le_bytes());
    p.extend_from_slice(&4u64.to_le_bytes());
    p.extend_from_slice(&count.to_le_bytes());
    p
}

fn malformed(payload: &[u8]) -> RecordError {
    decode(&with_payload(payload), MAX).unwrap_err()
}

#[test]
fn payload_errors_are_malformed() {
    assert_eq!(malformed(&[]), RecordError::Malformed("empty payload"));
    let mut p = payload_head(0);
    p[0] = 3;
    assert_eq!(malformed(&p), RecordError::Malformed("unknown version"));
    assert_eq!(
        malformed(&p[..5]),
        RecordError::Malformed("unknown version")
    );
    assert_eq!(malformed(&payload_head(0)[..5]), TRUNCATED);
    // A count the payload could not hold is refused before anything is reserved.
    assert_eq!(
        malformed(&payload_head(u32::MAX)),
        RecordError::Malformed("count exceeds the payload")
    );
    let mut p = payload_head(1);
    p.extend_from_slice(&[1, b'a']);
    p.extend_from_slice(&[0; 15]);
    assert_eq!(malformed(&p), TRUNCATED);
    p.push(0);
    assert!(decode(&with_payload(&p), MAX).is_ok());
    p.push(0);
    assert_eq!(
        malformed(&p),
        RecordError::Malformed("bytes after the last point")
    );
    let mut p = payload_head(1);
    p.extend_from_slice(&[1, 0xff]);
    p.extend_from_slice(&[0; 16]);
    assert_eq!(malformed(&p), RecordError::Malformed("name not UTF-8"));
    let mut p = payload_head(1);
    p.extend_from_slice(&[0x7f]);
    p.extend_from_slice(&[0; 16]);
    assert_eq!(
        malformed(&p),
        RecordError::Malformed("name runs past the payload")
    );
    // Zero as two bytes: a second spelling of a one-byte varint.
    let mut p = payload_head(1);
    p.extend_from_slice(&[0x80, 0x00]);
    p.extend_from_slice(&[0; 16]);
    assert_eq!(malformed(&p), RecordError::Malformed("overlong varint"));
    let mut p = payload_head(1);
    p.extend_from_slice(&[0xff; 9]);
    p.push(0x02);
    p.extend_from_slice(&[0; 16]);
    assert_eq!(
        malformed(&p),
        RecordError::Malformed("varint overflows 64 bits")
    );
}

#[test]
fn length_over_the_limit_is_too_large_even_when_incomplete() {
    let bytes = enc(&[pt("a", 1, 1.0)], 1);
    let len = bytes.len() - HEADER_BYTES;
    assert_eq!(
        decode(&bytes[..HEADER_BYTES], len - 1),
        Err(RecordError::TooLarge { len })
    );
    assert!(decode(&bytes, len).is_ok());
    assert_eq!(
        decode(&bytes[..HEADER_BYTES], len),
        Err(RecordError::Incomplete {
            needed: bytes.len()
        })
    );
}

#[test]
fn checksum_mismatch() {
    let mut bytes = enc(&[pt("a", 1, 1.0)], 1);
    bytes[5] ^= 1;
    assert_eq!(decode(&bytes, MAX), Err(RecordError::Checksum));
}

fn arb_point() -> impl Strategy<Value = Datapoint> {
    (
        prop_oneof![".{0,8}", ".{120,140}", "[a-z.]{0,300}"],
        any::<i64>(),
        any::<u64>(),
    )
        .prop_map(|(name, timestamp_ms, bits): (String, i64, u64)| Datapoint {
            name: name.into(),
            timestamp_ms,
            value: f64::from_bits(bits),
        })
}

fn arb_points() -> impl Strategy<Value = Vec<Datapoint>> {
    prop::collection::vec(arb_point(), 0..12)
}

proptest! {
    #[test]
    fn prop_round_trip(points in arb_points(), written_ms in any::<u64>()) {
        let bytes = enc(&points, written_ms);
        let (rec, used) = decode(&bytes, MAX).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(rec.written_ms, written_ms);
        prop_assert!(same_bits(&rec.points, &points));
    }

    #[test]
    fn prop_encoded_len_is_exact(points in arb_points()) {
        prop_assert_eq!(encoded_len(&points), enc(&points, 0).len());
    }

    #[test]
    fn prop_every_strict_prefix_is_incomplete(points in arb_points(), written_ms in any::<u64>()) {
        let bytes = enc(&points, written_ms);
        for cut in 0..bytes.len() {
            match decode(&bytes[..cut], MAX) {
                Err(RecordError::Incomplete { needed }) => {
                    prop_assert!(needed > cut);
                    prop_assert!(needed <= bytes.len());
                }
                other => prop_assert!(false, "prefix of {} bytes: {:?}", cut, other),
            }
        }
    }

    #[test]
    fn prop_any_bit_flip_is_an_error(
        points in arb_points(),
        written_ms in any::<u64>(),
        bit in any::<prop::sample::Index>(),
    ) {
        let mut bytes = enc(&points, written_ms);
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        match decode(&bytes, MAX) {
            Err(RecordError::Checksum
                | RecordError::TooLarge { .. }
                | RecordError::Incomplete { .. }
                | RecordError::Malformed(_)) => {}
            Ok((rec, _)) => prop_assert!(false, "bit {} flipped, decoded {:?}", bit, rec),
        }
    }

    #[test]
    fn prop_back_to_back_records_decode_in_sequence(
        a in arb_points(),
        b in arb_points(),
        wa in any::<u64>(),
        wb in any::<u64>(),
    ) {
        let mut bytes = Vec::new();
        encode(&a, wa, &mut bytes);
        let first = bytes.len();
        encode(&b, wb, &mut bytes);
        let (ra, used) = decode(&bytes, MAX).unwrap();
        prop_assert_eq!(used, first);
        prop_assert_eq!(ra.written_ms, wa);
        prop_assert!(same_bits(&ra.points, &a));
        let (rb, used) = decode(&bytes[first..], MAX).unwrap();
        prop_assert_eq!(used, bytes.len() - first);
        prop_assert_eq!(rb.written_ms, wb);
        prop_assert!(same_bits(&rb.points, &b));
    }

    /// Arbitrary bytes never panic, and whatever decodes re-encodes to the same bytes.
    #[test]
    fn prop_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok((rec, used)) = decode(&bytes, MAX) {
            let mut again = Vec::new();
            encode_record(&rec, &mut again);
            prop_assert_eq!(&again[..], &bytes[..used]);
            prop_assert_eq!(record_len(&rec), used);
        }
    }
}

/// A version 1 record, as earlier forwarders wrote it (no `arrived_ms`), reads back with its
/// write time as its arrival, and re-encodes in version 1; version 2 keeps both stamps.
#[test]
fn version_1_records_still_read_and_version_2_keeps_the_arrival() {
    let points = [pt("a.b", 5, 2.5)];
    let mut v1 = Vec::new();
    encode_as(&points, Stamp::from(1_000), V1, &mut v1);
    assert_eq!(v1[HEADER_BYTES], V1);
    assert_eq!(v1.len(), encoded_len(&points) - ARRIVED_BYTES);
    let (rec, used) = decode(&v1, MAX).unwrap();
    assert_eq!(used, v1.len());
    assert_eq!(
        (rec.version, rec.written_ms, rec.arrived_ms),
        (V1, 1_000, 1_000)
    );
    let mut again = Vec::new();
    encode_record(&rec, &mut again);
    assert_eq!(again, v1);

    let stamp = Stamp {
        written_ms: 2_000,
        arrived_ms: 1_500,
    };
    let mut v2 = Vec::new();
    encode(&points, stamp, &mut v2);
    assert_eq!(v2[HEADER_BYTES], VERSION);
    let (rec, _) = decode(&v2, MAX).unwrap();
    assert_eq!((rec.written_ms, rec.arrived_ms), (2_000, 1_500));
    assert!(same_bits(&rec.points, &points));
}

/// The fuzzer's seeds (`fuzz/seeds/spool_record/`) are records as this encoder writes them, so
/// they also pin the on-disk format: a change to it fails here. `SPOOL_RECORD_SEEDS=write`
/// rewrites them.
#[test]
fn fuzz_seeds_are_what_the_encoder_writes() {
    let unicode = [pt("métrique.温度.😀", -1, -0.0), pt("", 0, f64::NAN)];
    let long = [pt(&"servers.web01.".repeat(12), 1_700_000_000_000, 0.25)];
    let mut two = enc(&[pt("a.b", 1, 1.0)], 1);
    encode(&unicode, 2, &mut two);
    let mut torn = enc(&long, 3);
    torn.truncate(torn.len() - 5);
    let mut bad_crc = enc(&[pt("a.b", 1, 1.0)], 4);
    bad_crc[4] ^= 0x40;
    let mut v1 = Vec::new();
    encode_as(&[pt("a.b", 1, 1.0)], Stamp::from(6), V1, &mut v1);
    let seeds: [(&str, Vec<u8>); 7] = [
        ("empty", enc(&[], 0)),
        ("unicode", enc(&unicode, 1_700_000_000_123)),
        ("long-name", enc(&long, 5)),
        ("two-records", two),
        ("torn", torn),
        ("bad-checksum", bad_crc),
        ("version-1", v1),
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/spool_record");
    let write = std::env::var_os("SPOOL_RECORD_SEEDS").is_some_and(|v| v == "write");
    for (name, bytes) in seeds {
        let path = dir.join(name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{}", path.display());
    }
}
