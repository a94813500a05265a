//! Blueflood's wire format, and nothing else: how a datapoint is written into an ingest body,
//! how a body is built within the size limit, and what each answer means
//! (`shared/reference/blueflood-ingest.md` is the contract). The rest of the program never
//! sees JSON or status codes.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::model::Datapoint;

/// One element of the `/ingest` array. Exactly these keys: any other fails the whole request.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WirePoint<'a> {
    collection_time: i64,
    ttl_in_seconds: u32,
    metric_value: f64,
    metric_name: &'a str,
}

/// Appends one point's JSON object to `buf`.
pub fn encode_point(buf: &mut Vec<u8>, point: &Datapoint, ttl_seconds: u32) {
    let wire = WirePoint {
        collection_time: point.timestamp_ms,
        ttl_in_seconds: ttl_seconds,
        metric_value: point.value,
        metric_name: &point.name,
    };
    // Writing into a Vec cannot fail, and a finite f64 always serialises (NaN never gets here);
    // if serde_json ever did fail, the point would be missing from the body and Blueflood's
    // answer would not list it, so the caller's accounting would still hold.
    let _ = serde_json::to_writer(buf, &wire);
}

/// Builds one request body: a JSON array never larger than `max_bytes`.
#[derive(Debug)]
pub struct BodyBuilder {
    body: Vec<u8>,
    count: usize,
    max_bytes: usize,
    ttl_seconds: u32,
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
            ttl_seconds,
        }
    }

    pub fn offer(&mut self, point: &Datapoint) -> Offer {
        let mark = self.body.len();
        if self.count > 0 {
            self.body.push(b',');
        }
        encode_point(&mut self.body, point, self.ttl_seconds);
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
    for (i, p) in points.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        encode_point(&mut body, p, ttl_seconds);
    }
    body.push(b']');
    body
}

/// What an answer from Blueflood means for the batch that was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 200, 201, 204: all stored.
    Stored,
    /// 202: the server timed out waiting for its own write, which usually completes.
    ProbablyStored,
    /// 207: the listed points were rejected; all others were stored.
    PartiallyRejected(RejectedPoints),
    /// 400: nothing stored. `rejected` lists the points the answer names, if it names any.
    BadRequest(RejectedPoints),
    /// 401 / 403: the token is missing or no longer valid.
    Unauthorized,
    /// 413: too large (or, behind Repose, rate limited): split.
    TooLarge,
    /// 408, 429, 5xx but 501: retry later, honouring `retry_after`.
    Transient { retry_after: Option<Duration> },
    /// 415, 404, 405, 501 and any other answer: our request or configuration is wrong. Data is
    /// kept and retried with backoff so that fixing the configuration loses nothing.
    ClientError,
}

/// The points an error body names, as (metricName, collectionTime) pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectedPoints {
    pub points: HashSet<(String, i64)>,
    /// A sample message to log.
    pub sample: Option<String>,
}

impl RejectedPoints {
    pub fn contains(&self, p: &Datapoint) -> bool {
        // Only look up when there is something to find: the common 200 path never gets here.
        !self.points.is_empty() && self.points.contains(&(p.name.to_string(), p.timestamp_ms))
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorItem {
    #[serde(default)]
    metric_name: Option<String>,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Reads the `{"errors":[...]}` body; anything unparsable names no points.
pub fn parse_rejected(body: &[u8]) -> RejectedPoints {
    let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) else {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return RejectedPoints {
            points: HashSet::new(),
            sample: (!text.is_empty()).then_some(text),
        };
    };
    let mut out = RejectedPoints::default();
    for e in parsed.errors {
        if out.sample.is_none() {
            out.sample = Some(format!(
                "{} {}: {}",
                e.metric_name.as_deref().unwrap_or(""),
                e.source.as_deref().unwrap_or("-"),
                e.message.as_deref().unwrap_or("")
            ));
        }
        if let (Some(name), Some(ts)) = (e.metric_name, e.timestamp) {
            if !name.is_empty() {
                out.points.insert((name, ts));
            }
        }
    }
    out
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Classifies an answer.
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Verdict {
    match status {
        200 | 201 | 204 => Verdict::Stored,
        202 => Verdict::ProbablyStored,
        207 => Verdict::PartiallyRejected(parse_rejected(body)),
        400 => Verdict::BadRequest(parse_rejected(body)),
        401 | 403 => Verdict::Unauthorized,
        413 => Verdict::TooLarge,
        408 | 429 => Verdict::Transient { retry_after },
        501 => Verdict::ClientError,
        500..=599 => Verdict::Transient { retry_after },
        _ => Verdict::ClientError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(name: &str, ts: i64, v: f64) -> Datapoint {
        Datapoint {
            name: name.into(),
            timestamp_ms: ts,
            value: v,
        }
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

    #[test]
    fn classifies_the_contract_table() {
        assert_eq!(classify(200, None, b""), Verdict::Stored);
        assert_eq!(classify(204, None, b""), Verdict::Stored);
        assert_eq!(classify(202, None, b""), Verdict::ProbablyStored);
        assert_eq!(classify(401, None, b""), Verdict::Unauthorized);
        assert_eq!(classify(403, None, b""), Verdict::Unauthorized);
        assert_eq!(classify(413, None, b""), Verdict::TooLarge);
        assert_eq!(classify(415, None, b""), Verdict::ClientError);
        assert_eq!(classify(501, None, b""), Verdict::ClientError);
        let ra = Some(Duration::from_secs(3));
        assert_eq!(
            classify(429, ra, b""),
            Verdict::Transient { retry_after: ra }
        );
        assert_eq!(
            classify(503, None, b""),
            Verdict::Transient { retry_after: None }
        );
        assert_eq!(
            classify(408, None, b""),
            Verdict::Transient { retry_after: None }
        );
        let body = br#"{"errors":[{"tenantId":"t","timestamp":5,"metricName":"a.b","source":"collectionTime","message":"Out of bounds"}]}"#;
        match classify(207, None, body) {
            Verdict::PartiallyRejected(r) => {
                assert!(r.contains(&pt("a.b", 5, 0.0)));
                assert!(!r.contains(&pt("a.b", 6, 0.0)));
                assert!(r.sample.expect("sample").contains("Out of bounds"));
            }
            other => panic!("{other:?}"),
        }
        match classify(400, None, b"Cannot parse content") {
            Verdict::BadRequest(r) => assert!(r.points.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
