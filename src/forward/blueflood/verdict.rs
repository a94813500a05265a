//! What an answer from Blueflood means for the batch that was sent, and how much of an answer
//! is worth reading. Only a body that is recognisably Blueflood's (its `{"errors":[...]}`
//! document, or its plain `Cannot parse content`) can get a point dropped; whatever else a
//! proxy, a load balancer or a broken server answers keeps the data.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::forward::answer::{Answer, EXCERPT_CHARS};
use crate::model::Datapoint;
use crate::redact::foreign_text as excerpt;

/// Most errors Blueflood reports for one point of a single-tenant body: one per field it
/// checks (`metricName`, `metricValue`, `collectionTime`, `ttlInSeconds`).
const MAX_ERRORS_PER_POINT: usize = 4;
/// Room for one error object besides the tenant and the metric name it repeats: its keys, the
/// timestamp, the source and the message (Blueflood's longest, the collectionTime window, is
/// about 130 bytes).
const ERROR_ALLOWANCE: usize = 512;
/// Room for the envelope, and for errors that name no point ("No valid metrics").
const ERRORS_BASE: usize = 64 * 1024;
/// Any other answer is read only to be logged: Blueflood's are empty or one short message.
pub const OTHER_ANSWER_LIMIT: usize = 8 * 1024;

/// The most bytes worth reading of an answer with `status` to a request of `points` points
/// whose JSON is `json_len` bytes, for a tenant of `tenant_len` bytes. Only 207 and 400 list
/// points, each at most `MAX_ERRORS_PER_POINT` times, each time with the tenant and the name
/// (escaped as in our body: Jackson escapes the same characters), so a longer answer is not
/// Blueflood's.
pub fn answer_limit(status: u16, json_len: usize, points: usize, tenant_len: usize) -> usize {
    match status {
        207 | 400 => {
            let per_point = ERROR_ALLOWANCE.saturating_add(tenant_len);
            let listed = points.saturating_mul(per_point).saturating_add(json_len);
            ERRORS_BASE.saturating_add(MAX_ERRORS_PER_POINT.saturating_mul(listed))
        }
        _ => OTHER_ANSWER_LIMIT,
    }
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
    /// 400 with Blueflood's own error body: nothing stored. `rejected` lists the points the
    /// answer names, if it names any.
    BadRequest(RejectedPoints),
    /// 401 / 403: the token is missing or no longer valid.
    Unauthorized,
    /// 413: too large for Blueflood or a proxy in front of it, or (Repose) rate limited.
    TooLarge { retry_after: Option<Duration> },
    /// 408, 429, 5xx but 501: retry later, honouring `retry_after`.
    Transient { retry_after: Option<Duration> },
    /// 3xx: never followed (the target would get the data and the token, and its answer would
    /// say nothing about Blueflood). Our configuration points at the wrong place: kept.
    Redirected,
    /// A 400 whose body is not Blueflood's (a proxy's page), or a 207 or 400 longer than
    /// anything Blueflood could say about this batch. Nothing says which points are bad, so
    /// none is: kept and retried.
    NotBlueflood,
    /// 415, 404, 405, 501 and any other answer: our request or configuration is wrong. Data is
    /// kept and retried with backoff so that fixing the configuration loses nothing.
    ClientError,
}

/// The points an error body names, as (metricName, collectionTime) pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RejectedPoints {
    /// metricName → the collectionTimes named with it; looked up by `&str`, so checking a
    /// batch against a 207 answer allocates nothing per point.
    pub points: HashMap<String, HashSet<i64>>,
    /// A sample message to log (through [`crate::redact::foreign_text`]: escaped and short).
    pub sample: Option<String>,
}

impl RejectedPoints {
    pub fn contains(&self, p: &Datapoint) -> bool {
        self.points
            .get(&*p.name)
            .is_some_and(|times| times.contains(&p.timestamp_ms))
    }
}

/// Blueflood's error document. `errors` is required: `{}` is not Blueflood's.
#[derive(Deserialize)]
struct ErrorBody {
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

/// What Blueflood answers, without the JSON envelope in older releases, to a body it cannot
/// parse (bad JSON, an unknown key, a NaN): one bad point poisons the request.
const CANNOT_PARSE: &[u8] = b"Cannot parse content";

fn collect(parsed: ErrorBody) -> RejectedPoints {
    let mut out = RejectedPoints::default();
    for e in parsed.errors {
        if out.sample.is_none() {
            let text = format!(
                "{} {}: {}",
                e.metric_name.as_deref().unwrap_or(""),
                e.source.as_deref().unwrap_or("-"),
                e.message.as_deref().unwrap_or("")
            );
            out.sample = Some(excerpt(text.as_bytes(), EXCERPT_CHARS));
        }
        if let (Some(name), Some(ts)) = (e.metric_name, e.timestamp)
            && !name.is_empty()
        {
            out.points.entry(name).or_default().insert(ts);
        }
    }
    out
}

/// The errors of a body that is recognisably Blueflood's: its error document with at least
/// one error, or its plain `Cannot parse content`. `None` for anything else.
fn blueflood_errors(body: &[u8]) -> Option<RejectedPoints> {
    let body = body.trim_ascii();
    if body.starts_with(CANNOT_PARSE) {
        return Some(RejectedPoints {
            points: HashMap::new(),
            sample: Some(excerpt(body, EXCERPT_CHARS)),
        });
    }
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok()?;
    (!parsed.errors.is_empty()).then(|| collect(parsed))
}

/// Reads a 207's `{"errors":[...]}` body; anything unparsable names no points.
pub fn parse_rejected(body: &[u8]) -> RejectedPoints {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => collect(parsed),
        Err(_) => {
            let text = excerpt(body, EXCERPT_CHARS);
            RejectedPoints {
                points: HashMap::new(),
                sample: (!text.is_empty()).then_some(text),
            }
        }
    }
}

/// `Retry-After`: delay-seconds or an HTTP date. Not bounded here: the delivery caps it.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Classifies a whole answer (one whose body was read to its end).
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Verdict {
    verdict(status, retry_after, body, true)
}

/// Classifies an answer as the transport read it, perhaps only the start of its body.
pub fn classify_answer(answer: &Answer) -> Verdict {
    verdict(
        answer.status,
        answer.retry_after,
        &answer.body,
        answer.complete,
    )
}

fn verdict(status: u16, retry_after: Option<Duration>, body: &[u8], complete: bool) -> Verdict {
    match status {
        200 | 201 | 204 => Verdict::Stored,
        202 => Verdict::ProbablyStored,
        // Cut short, it cannot be trusted to name the points it rejects.
        207 | 400 if !complete => Verdict::NotBlueflood,
        207 => Verdict::PartiallyRejected(parse_rejected(body)),
        400 => blueflood_errors(body).map_or(Verdict::NotBlueflood, Verdict::BadRequest),
        300..=399 => Verdict::Redirected,
        401 | 403 => Verdict::Unauthorized,
        413 => Verdict::TooLarge { retry_after },
        408 | 429 => Verdict::Transient { retry_after },
        501 => Verdict::ClientError,
        500..=599 => Verdict::Transient { retry_after },
        _ => Verdict::ClientError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(name: &str, ts: i64) -> Datapoint {
        Datapoint::new(name, ts, 1.0)
    }

    #[test]
    fn classifies_the_contract_table() {
        assert_eq!(classify(200, None, b""), Verdict::Stored);
        assert_eq!(classify(204, None, b""), Verdict::Stored);
        assert_eq!(classify(202, None, b""), Verdict::ProbablyStored);
        assert_eq!(classify(401, None, b""), Verdict::Unauthorized);
        assert_eq!(classify(403, None, b""), Verdict::Unauthorized);
        let ra = Some(Duration::from_secs(3));
        assert_eq!(
            classify(413, ra, b""),
            Verdict::TooLarge { retry_after: ra }
        );
        assert_eq!(classify(415, None, b""), Verdict::ClientError);
        assert_eq!(classify(501, None, b""), Verdict::ClientError);
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
        for status in [300, 301, 302, 303, 307, 308] {
            assert_eq!(classify(status, None, b""), Verdict::Redirected, "{status}");
        }
        let body = br#"{"errors":[{"tenantId":"t","timestamp":5,"metricName":"a.b","source":"collectionTime","message":"Out of bounds"}]}"#;
        match classify(207, None, body) {
            Verdict::PartiallyRejected(r) => {
                assert!(r.contains(&pt("a.b", 5)));
                assert!(!r.contains(&pt("a.b", 6)));
                assert!(r.sample.expect("sample").contains("Out of bounds"));
            }
            other => panic!("{other:?}"),
        }
        match classify(400, None, body) {
            Verdict::BadRequest(r) => assert!(r.contains(&pt("a.b", 5))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_blueflood_s_own_400_bodies_are_rejections() {
        let cannot_parse = br#"{"errors":[{"tenantId":"t1","timestamp":null,"metricName":"","source":null,"message":"Cannot parse content"}]}"#;
        for body in [
            &b"Cannot parse content"[..],
            b"  Cannot parse content\n",
            cannot_parse,
            br#"{"errors":[{"message":"No valid metrics"}]}"#,
        ] {
            match classify(400, None, body) {
                Verdict::BadRequest(r) => assert!(r.points.is_empty()),
                other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
        for body in [
            &b""[..],
            b"<html><head><title>400 Request Header Or Cookie Too Large</title></head></html>",
            b"Bad Request",
            b"{}",
            br#"{"errors":[]}"#,
            br#"{"errors":["a string"]}"#,
            br#"{"error":"bad request"}"#,
            b"[]",
        ] {
            assert_eq!(
                classify(400, None, body),
                Verdict::NotBlueflood,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn cut_short_207_and_400_answers_are_not_trusted() {
        let body = br#"{"errors":[{"tenantId":"t","timestamp":5,"metricName":"a.b","source":"collectionTime","message":"x"}]}"#;
        for status in [207, 400] {
            let answer = Answer {
                complete: false,
                body: bytes::Bytes::from_static(body),
                ..Answer::empty(status)
            };
            assert_eq!(classify_answer(&answer), Verdict::NotBlueflood, "{status}");
        }
        // Success is success, whatever follows it.
        let answer = Answer {
            complete: false,
            ..Answer::empty(200)
        };
        assert_eq!(classify_answer(&answer), Verdict::Stored);
    }

    /// An answer listing every point of a batch with every error Blueflood can give it, each
    /// with a long message, fits the limit; the limit for anything else stays small.
    #[test]
    fn the_limit_holds_the_longest_answer_blueflood_can_give() {
        let tenant = "a-rather-long-tenant-identifier-0123456789";
        let names: Vec<String> = (0..500)
            .map(|i| format!("some.metric.\"quoted\"\\\u{1}.{}.{i}", "n".repeat(i % 300)))
            .collect();
        let points: Vec<Datapoint> = names.iter().map(|n| pt(n, 1_700_000_000_000)).collect();
        let json = super::super::encode_body(&points, 86400);
        let message = "Out of bounds. Cannot be more than 259200000 milliseconds into the past. \
                       Cannot be more than 600000 milliseconds into the future";
        let errors: Vec<serde_json::Value> = points
            .iter()
            .flat_map(|p| {
                [
                    "metricName",
                    "metricValue",
                    "collectionTime",
                    "ttlInSeconds",
                ]
                .map(|source| {
                    serde_json::json!({
                        "tenantId": tenant,
                        "timestamp": p.timestamp_ms,
                        "metricName": &*p.name,
                        "source": source,
                        "message": message,
                    })
                })
            })
            .collect();
        let answer = serde_json::to_vec(&serde_json::json!({ "errors": errors })).expect("json");
        let limit = answer_limit(207, json.len(), points.len(), tenant.len());
        assert!(answer.len() < limit, "{} >= {limit}", answer.len());
        assert_eq!(
            answer_limit(400, json.len(), points.len(), tenant.len()),
            limit
        );
        assert_eq!(
            answer_limit(200, json.len(), points.len(), tenant.len()),
            8192
        );
        assert_eq!(answer_limit(503, usize::MAX, usize::MAX, 1), 8192);
        assert_eq!(answer_limit(207, usize::MAX, usize::MAX, 1), usize::MAX);
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
        assert_eq!(
            parse_retry_after("4294967295", now),
            Some(Duration::from_secs(4_294_967_295))
        );
        assert!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now)
                .is_some_and(|d| d > Duration::from_secs(250_000_000_000))
        );
    }
}
