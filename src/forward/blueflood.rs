//! Blueflood's wire format, and nothing else: how a datapoint is written into an ingest body,
//! how a body is built within the size limit, and (in `blueflood/verdict.rs`) what each answer
//! means and how much of it is worth reading (`docs/reference/blueflood-ingest.md` is the
//! contract). The rest of the program never sees JSON or status codes.
//!
//! A point is written by hand rather than through serde: constant byte strings for the keys,
//! `itoa` for the integers and `zmij` for the value (the formatters serde_json itself uses, so
//! the text is byte for byte what `serde_json::to_writer` would write), and a quick scan of the
//! name that sends only names needing escapes through serde_json's string writer. The tests
//! hold the two outputs equal.

mod verdict;

pub use verdict::{
    OTHER_ANSWER_LIMIT, RejectedPoints, Verdict, answer_limit, classify, classify_answer,
    parse_rejected, parse_retry_after,
};

use crate::model::Datapoint;

/// The shortest a point can encode to (`{"collectionTime":0,"ttlInSeconds":1,
/// "metricValue":0.0,"metricName":""}` is 71 bytes): a body of `n` bytes holds fewer than
/// `n / MIN_POINT_JSON + 1` points.
pub const MIN_POINT_JSON: usize = 64;

/// What opens every object, up to the `collectionTime` value.
const OPEN: &[u8] = b"{\"collectionTime\":";
/// Between the TTL and the value.
const TTL_KEY: &[u8] = b",\"ttlInSeconds\":";
const VALUE_KEY: &[u8] = b",\"metricValue\":";
/// Between the value and the name.
const NAME_KEY: &[u8] = b",\"metricName\":";
/// Longest `,"ttlInSeconds":4294967295,"metricValue":`.
const MIDDLE_MAX: usize = 17 + 10 + 15;

/// The text between `collectionTime`'s value and `metricValue`'s: the same for every point of a
/// body, so written once.
#[derive(Debug, Clone, Copy)]
struct Middle {
    bytes: [u8; MIDDLE_MAX],
    len: usize,
}

impl Middle {
    fn new(ttl_seconds: u32) -> Self {
        let mut itoa = itoa::Buffer::new();
        let parts = [TTL_KEY, itoa.format(ttl_seconds).as_bytes(), VALUE_KEY];
        let mut bytes = [0u8; MIDDLE_MAX];
        let mut len = 0;
        for part in parts {
            bytes[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        }
        Self { bytes, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Appends one point's JSON object to `buf`: exactly the contract's four keys, in the order
/// `collectionTime`, `ttlInSeconds`, `metricValue`, `metricName`.
pub fn encode_point(buf: &mut Vec<u8>, point: &Datapoint, ttl_seconds: u32) {
    write_point(buf, point, &Middle::new(ttl_seconds));
}

fn write_point(buf: &mut Vec<u8>, point: &Datapoint, middle: &Middle) {
    // The constant parts, two integers of at most 20 bytes, a value of at most 24, the name and
    // its quotes: one reservation covers every write below unless the name needs escapes.
    buf.reserve(OPEN.len() + 20 + MIDDLE_MAX + 24 + NAME_KEY.len() + point.name.len() + 3);
    buf.extend_from_slice(OPEN);
    buf.extend_from_slice(itoa::Buffer::new().format(point.timestamp_ms).as_bytes());
    buf.extend_from_slice(middle.as_bytes());
    if point.value.is_finite() {
        buf.extend_from_slice(zmij::Buffer::new().format_finite(point.value).as_bytes());
    } else {
        // What serde_json writes for NaN and infinities (the normaliser never lets them through).
        buf.extend_from_slice(b"null");
    }
    buf.extend_from_slice(NAME_KEY);
    write_name(buf, &point.name);
    buf.push(b'}');
}

/// Whether `s` can be written between quotes as it is: no `"`, `\` or control character
/// below 0x20 (the only bytes JSON requires escaped; serde_json escapes exactly these). The
/// fold has no early exit so that the compiler can vectorise it.
fn is_plain(s: &str) -> bool {
    !s.bytes().fold(false, |acc, b| {
        acc | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

fn write_name(buf: &mut Vec<u8>, name: &str) {
    if is_plain(name) {
        buf.push(b'"');
        buf.extend_from_slice(name.as_bytes());
        buf.push(b'"');
    } else {
        // serde_json writes the quotes too. Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, name);
    }
}

/// Builds one request body: a JSON array never larger than `max_bytes`.
#[derive(Debug)]
pub struct BodyBuilder {
    body: Vec<u8>,
    count: usize,
    max_bytes: usize,
    middle: Middle,
}

/// The outcome of offering a point to a [`BodyBuilder`].
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    Added,
    /// The body is full: seal it and offer the point again to a fresh builder.
    Full,
    /// This point alone is larger than the limit: it can never be sent.
    TooLarge,
}

impl BodyBuilder {
    pub fn new(max_bytes: usize, ttl_seconds: u32) -> Self {
        let mut body = Vec::with_capacity(max_bytes.min(64 * 1024));
        body.push(b'[');
        Self {
            body,
            count: 0,
            max_bytes,
            middle: Middle::new(ttl_seconds),
        }
    }

    pub fn offer(&mut self, point: &Datapoint) -> Offer {
        let mark = self.body.len();
        if self.count > 0 {
            self.body.push(b',');
        }
        write_point(&mut self.body, point, &self.middle);
        // Strictly less: the closing bracket still needs its byte.
        if self.body.len() < self.max_bytes {
            self.count += 1;
            return Offer::Added;
        }
        self.body.truncate(mark);
        if self.count == 0 {
            Offer::TooLarge
        } else {
            Offer::Full
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The finished JSON array.
    pub fn finish(mut self) -> Vec<u8> {
        self.body.push(b']');
        self.body
    }
}

/// Encodes `points` into one body with no size check (for re-sending parts of a batch, which
/// are never larger than the batch they came from).
pub fn encode_body(points: &[Datapoint], ttl_seconds: u32) -> Vec<u8> {
    let mut body = Vec::with_capacity(points.len() * 96 + 2);
    body.push(b'[');
    let middle = Middle::new(ttl_seconds);
    for (i, p) in points.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        write_point(&mut body, p, &middle);
    }
    body.push(b']');
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde::Serialize;

    /// The encoding the hand-written one must reproduce byte for byte.
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct WirePoint<'a> {
        collection_time: i64,
        ttl_in_seconds: u32,
        metric_value: f64,
        metric_name: &'a str,
    }

    fn serde_encoded(p: &Datapoint, ttl_seconds: u32) -> Vec<u8> {
        serde_json::to_vec(&WirePoint {
            collection_time: p.timestamp_ms,
            ttl_in_seconds: ttl_seconds,
            metric_value: p.value,
            metric_name: &p.name,
        })
        .expect("serde_json encodes")
    }

    /// Characters a name is drawn from: plain metric-name bytes, every byte JSON must escape,
    /// and non-ASCII of each UTF-8 length (U+2028 and U+2029 are legal unescaped in JSON).
    fn random_name(rng: &mut StdRng) -> String {
        const PLAIN: &[char] = &[
            'a', 'z', 'A', '0', '9', '.', '-', '_', ' ', '/', '~', '\x7f',
        ];
        const SPECIAL: &[char] = &[
            '"',
            '\\',
            '\n',
            '\r',
            '\t',
            '\u{8}',
            '\u{c}',
            '\0',
            '\u{1}',
            '\u{1f}',
            'é',
            '日',
            '\u{2028}',
            '\u{2029}',
            '\u{1F600}',
            '\u{10FFFF}',
        ];
        let len = rng.random_range(0..40);
        (0..len)
            .map(|_| {
                if rng.random_bool(0.85) {
                    PLAIN[rng.random_range(0..PLAIN.len())]
                } else {
                    SPECIAL[rng.random_range(0..SPECIAL.len())]
                }
            })
            .collect()
    }

    fn random_value(rng: &mut StdRng) -> f64 {
        const EDGES: &[f64] = &[
            0.0,
            -0.0,
            1.0,
            -1.5,
            0.1,
            1e300,
            -1e300,
            5e-324,
            -5e-324,
            2.2250738585072014e-308,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            1e15,
            1e16,
            1e17,
            123456789012345680.0,
            1e-5,
            1e-7,
            0.30000000000000004,
        ];
        match rng.random_range(0..4) {
            0 => EDGES[rng.random_range(0..EDGES.len())],
            1 => f64::from(rng.random_range(-1_000_000i32..1_000_000)) / 100.0,
            2 => rng.random::<f64>() * 10f64.powi(rng.random_range(-30..30)),
            _ => loop {
                let v = f64::from_bits(rng.random());
                if v.is_finite() {
                    break v;
                }
            },
        }
    }

    #[test]
    fn hand_written_encoding_is_byte_for_byte_serde_json() {
        let mut rng = StdRng::seed_from_u64(0x0b1e_f100d);
        for round in 0..20_000 {
            let p = Datapoint {
                name: random_name(&mut rng).into(),
                timestamp_ms: match round % 4 {
                    0 => [i64::MIN, -1, 0, i64::MAX][rng.random_range(0..4)],
                    _ => rng.random(),
                },
                value: random_value(&mut rng),
            };
            let ttl = match round % 3 {
                0 => [0, 1, u32::MAX][rng.random_range(0..3)],
                _ => rng.random(),
            };
            let mut ours = Vec::new();
            encode_point(&mut ours, &p, ttl);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&serde_encoded(&p, ttl)),
                "{p:?} ttl {ttl}"
            );
            let v: serde_json::Value = serde_json::from_slice(&ours).expect("valid JSON");
            assert_eq!(v["metricName"].as_str(), Some(&*p.name));
            assert_eq!(v["collectionTime"].as_i64(), Some(p.timestamp_ms));
            assert_eq!(v["ttlInSeconds"].as_u64(), Some(u64::from(ttl)));
            // The value's text reads back as exactly the same f64 (serde_json's own parser may
            // be one ulp off without its `float_roundtrip` feature, so parse the text with std).
            let text = std::str::from_utf8(&ours).expect("utf-8");
            let start = text.find("\"metricValue\":").expect("value key") + 14;
            let end = start + text[start..].find(',').expect("value ends");
            let back: f64 = text[start..end].parse().expect("a number");
            assert_eq!(back.to_bits(), p.value.to_bits(), "{}", &text[start..end]);
        }
    }

    #[test]
    fn bodies_are_serde_json_arrays_and_non_finite_values_are_null() {
        let points = [
            pt("a.b", 1, 1.0),
            pt("q\"uote\\back\u{1}ctl", -5, -0.0),
            pt("日本.é", 7, 5e-324),
        ];
        let serde_body = serde_json::to_vec(
            &points
                .iter()
                .map(|p| WirePoint {
                    collection_time: p.timestamp_ms,
                    ttl_in_seconds: 60,
                    metric_value: p.value,
                    metric_name: &p.name,
                })
                .collect::<Vec<_>>(),
        )
        .expect("encodes");
        assert_eq!(encode_body(&points, 60), serde_body);
        let mut b = BodyBuilder::new(1 << 20, 60);
        for p in &points {
            assert_eq!(b.offer(p), Offer::Added);
        }
        assert_eq!(b.finish(), serde_body);
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let p = pt("x", 1, v);
            let mut ours = Vec::new();
            encode_point(&mut ours, &p, 60);
            assert_eq!(ours, serde_encoded(&p, 60));
        }
    }

    fn pt(name: &str, ts: i64, v: f64) -> Datapoint {
        Datapoint::new(name, ts, v)
    }

    #[test]
    fn encodes_exactly_the_contract_keys_with_integer_milliseconds() {
        let body = encode_body(
            &[pt("a.b", 1_700_000_000_123, 1.5), pt("c\"d", 5, -2.0)],
            86400,
        );
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        let first = v[0].as_object().expect("object");
        let mut keys: Vec<_> = first.keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "collectionTime",
                "metricName",
                "metricValue",
                "ttlInSeconds"
            ]
        );
        assert!(v[0]["collectionTime"].is_i64());
        assert_eq!(v[0]["collectionTime"], 1_700_000_000_123i64);
        assert_eq!(v[0]["metricValue"], 1.5);
        assert_eq!(v[1]["metricName"], "c\"d");
        assert_eq!(v[1]["ttlInSeconds"], 86400);
    }

    #[test]
    fn builder_never_exceeds_the_limit_and_flags_oversized_points() {
        let limit = 300;
        let mut b = BodyBuilder::new(limit, 60);
        let mut added = 0;
        loop {
            match b.offer(&pt("some.metric.name", 1, 1.0)) {
                Offer::Added => added += 1,
                Offer::Full => break,
                Offer::TooLarge => panic!("small point reported too large"),
            }
        }
        assert!(added >= 2);
        let body = b.finish();
        assert!(body.len() <= limit, "{}", body.len());
        let v: Vec<serde_json::Value> = serde_json::from_slice(&body).expect("json");
        assert_eq!(v.len(), added);

        let mut b = BodyBuilder::new(limit, 60);
        assert_eq!(b.offer(&pt(&"x".repeat(400), 1, 1.0)), Offer::TooLarge);
        assert!(b.is_empty());
        assert_eq!(b.finish(), b"[]");
    }
}
