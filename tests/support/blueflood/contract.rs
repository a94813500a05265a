//! What the Blueflood double answers when no fault is queued: Blueflood's own decision order
//! from `docs/reference/blueflood-ingest.md` (identity layer, size, media types, routing,
//! parse, per-point validation, upsert), and the shape of its answers and error bodies.

use std::collections::HashSet;
use std::io::Read;

use axum::body::Body;
use bytes::Bytes;
use hyper::Response;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{
    Auth, MAX_BODY, MAX_FUTURE_MS, MAX_PAST_MS, RequestRecord, Shared, StoredPoint,
    TTL_WHOLE_REQUEST_FAILURE,
};

/// The answer to one request, before it becomes an HTTP response.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: String,
    pub(super) headers: Vec<(&'static str, String)>,
}

impl Answer {
    pub(super) fn empty(status: u16) -> Answer {
        Answer {
            status,
            body: String::new(),
            headers: Vec::new(),
        }
    }

    fn errors(status: u16, errors: Vec<ErrorData>) -> Answer {
        Answer {
            status,
            body: serde_json::to_string(&ErrorResponse { errors }).expect("serialize errors"),
            headers: Vec::new(),
        }
    }

    /// A request-level error with a single message (no point attached).
    fn message(status: u16, tenant: &str, message: &str) -> Answer {
        Answer::errors(
            status,
            vec![ErrorData {
                tenant_id: tenant.to_string(),
                timestamp: None,
                metric_name: String::new(),
                source: None,
                message: message.to_string(),
            }],
        )
    }

    pub(super) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    pub(super) fn into_response(self) -> Response<Body> {
        // Deliberately no Content-Type: Blueflood sends none, and the client must not need one.
        let mut builder = Response::builder().status(self.status);
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        builder.body(Body::from(self.body)).expect("valid response")
    }
}

/// Blueflood's error body element; field order follows the contract page.
#[derive(Serialize, Debug, Clone)]
struct ErrorData {
    #[serde(rename = "tenantId")]
    tenant_id: String,
    timestamp: Option<i64>,
    #[serde(rename = "metricName")]
    metric_name: String,
    source: Option<&'static str>,
    message: String,
}

#[derive(Serialize)]
struct ErrorResponse {
    errors: Vec<ErrorData>,
}

pub(super) enum Decoded {
    Ok(Vec<u8>),
    TooLarge,
    Corrupt,
}

/// Inflates gzip/deflate bodies, reading at most MAX_BODY + 1 bytes so a decompression bomb
/// costs us 1 MiB, not whatever it expands to.
pub(super) fn decode_body(raw: &Bytes, encoding: Option<&str>) -> Decoded {
    let limit = MAX_BODY as u64 + 1;
    let mut out = Vec::new();
    let enc = encoding.map(|e| e.trim().to_ascii_lowercase());
    let result = match enc.as_deref() {
        Some("gzip") | Some("x-gzip") => flate2::read::GzDecoder::new(&raw[..])
            .take(limit)
            .read_to_end(&mut out),
        Some("deflate") => {
            // HTTP "deflate" is zlib-wrapped, but servers (Netty included) accept raw deflate too.
            let zlib = flate2::read::ZlibDecoder::new(&raw[..])
                .take(limit)
                .read_to_end(&mut out);
            if zlib.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(&raw[..])
                    .take(limit)
                    .read_to_end(&mut out)
            } else {
                zlib
            }
        }
        // identity or unknown encodings pass through untouched, as Netty's decompressor does.
        _ => {
            out.extend_from_slice(&raw[..raw.len().min(limit as usize)]);
            Ok(out.len())
        }
    };
    match result {
        Err(_) => Decoded::Corrupt,
        Ok(_) if out.len() > MAX_BODY => Decoded::TooLarge,
        Ok(_) => Decoded::Ok(out),
    }
}

enum Route {
    Single(String),
    Multi(String),
}

fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v2.0/")?;
    let mut segs = rest.split('/');
    let tenant = segs.next()?;
    if tenant.is_empty() || segs.next()? != "ingest" {
        return None;
    }
    // A trailing slash yields an extra "" segment, which is (correctly) a 404.
    match (segs.next(), segs.next()) {
        (None, _) => Some(Route::Single(tenant.to_string())),
        (Some("multi"), None) => Some(Route::Multi(tenant.to_string())),
        _ => None,
    }
}

const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
];

/// Normal handling: authentication (the identity layer in front), then Blueflood's decision
/// order from the contract page. Stores the valid points.
pub(super) fn normal(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    accept: Option<&str>,
    decoded: &Decoded,
    record: &RequestRecord,
    timed_out_persisting: bool,
) -> Answer {
    // Identity layer (Repose) sits in front of Blueflood: it answers before Blueflood sees anything.
    {
        let st = shared.lock();
        let ok = match &st.auth {
            Auth::Open => true,
            Auth::Token(t) => record.auth_token.as_deref() == Some(t.as_str()),
            Auth::Keystone(ks) => record
                .auth_token
                .as_deref()
                .is_some_and(|t| ks.token_is_valid(t)),
        };
        if !ok {
            return Answer::empty(401);
        }
    }

    // 1. Size (and undecodable bodies, which Netty's decompressor fails as a bad request).
    let body = match decoded {
        Decoded::TooLarge => return Answer::empty(413).with_header("connection", "close"),
        Decoded::Corrupt => return Answer::message(400, "", "Cannot parse content"),
        Decoded::Ok(b) => b,
    };

    // 2. Media types.
    if let Some(ct) = record.content_type.as_deref()
        && !ct.to_ascii_lowercase().contains("application/json")
    {
        return Answer::message(415, "", &format!("Unsupported content-type: {ct}"));
    }
    if let Some(acc) = accept {
        let acc_l = acc.to_ascii_lowercase();
        if !acc_l.trim().is_empty() && !acc_l.contains("*/*") && !acc_l.contains("application/json")
        {
            return Answer::message(415, "", &format!("Unsupported accept: {acc}"));
        }
    }

    // 3. Routing.
    let Some(route) = route(parts.uri.path()) else {
        return Answer::empty(404);
    };
    let method = parts.method.as_str();
    if method != "POST" {
        if KNOWN_METHODS.contains(&method) {
            return Answer::empty(405).with_header("allow", "POST");
        }
        return Answer::empty(501);
    }
    let (url_tenant, multi) = match &route {
        Route::Single(t) => (t.as_str(), false),
        Route::Multi(t) => (t.as_str(), true),
    };

    // 4. Parse.
    let (now, reject_names) = {
        let st = shared.lock();
        (st.now_ms.unwrap_or_else(wall_ms), st.reject_names.clone())
    };
    let points = match parse(body, url_tenant, multi, &reject_names) {
        Ok(p) => p,
        Err(a) => return a,
    };

    // 5. Per-point validation.
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for p in points {
        let Some(value) = p.value else {
            // null/missing metricValue: dropped silently, neither stored nor reported.
            continue;
        };
        let mut errs = Vec::new();
        let err = |source: &'static str, message: &str| ErrorData {
            tenant_id: p.tenant.clone(),
            timestamp: Some(p.collection_time),
            metric_name: p.metric_name.clone(),
            source: Some(source),
            message: message.to_string(),
        };
        if multi && p.tenant.is_empty() {
            errs.push(err("tenantId", "may not be empty"));
        }
        if p.metric_name.is_empty() {
            errs.push(err("metricName", "may not be empty"));
        }
        let number = match value {
            PointValue::Number(n) => Some(n),
            PointValue::NotANumber => {
                errs.push(err("metricValue", "must be a number"));
                None
            }
        };
        if p.collection_time < now - MAX_PAST_MS || p.collection_time > now + MAX_FUTURE_MS {
            errs.push(err(
                "collectionTime",
                &format!(
                    "Out of bounds. Cannot be more than {MAX_PAST_MS} milliseconds into the past. \
                     Cannot be more than {MAX_FUTURE_MS} milliseconds into the future"
                ),
            ));
        }
        if !(1..=2_147_483_646).contains(&p.ttl) {
            errs.push(err("ttlInSeconds", "must be between 1 and 2147483647"));
        }
        match (number, errs.is_empty()) {
            (Some(n), true) => valid.push(StoredPoint {
                tenant: p.tenant,
                metric_name: p.metric_name,
                collection_time: p.collection_time,
                metric_value: n,
                ttl_in_seconds: p.ttl,
                unit: p.unit,
            }),
            _ => errors.extend(errs),
        }
    }

    // 6. Nothing valid.
    if valid.is_empty() {
        if errors.is_empty() {
            return Answer::message(400, url_tenant, "No valid metrics");
        }
        return Answer::errors(400, errors);
    }

    // 7. Persist (upsert).
    {
        let mut st = shared.lock();
        for p in valid {
            st.writes += 1;
            let key = (p.tenant.clone(), p.metric_name.clone(), p.collection_time);
            match st.index.get(&key).copied() {
                Some(i) => st.stored[i] = p,
                None => {
                    let i = st.stored.len();
                    st.stored.push(p);
                    st.index.insert(key, i);
                }
            }
        }
    }
    shared.stored_changed.notify_waiters();
    if timed_out_persisting {
        return Answer::message(202, url_tenant, "Timed out persisting metrics");
    }

    // 8. Partial or full success.
    if errors.is_empty() {
        Answer::empty(200)
    } else {
        Answer::errors(207, errors)
    }
}

enum PointValue {
    Number(f64),
    /// A string, bool, array or object: a per-point error, not a parse failure.
    NotANumber,
}

struct ParsedPoint {
    tenant: String,
    metric_name: String,
    value: Option<PointValue>,
    collection_time: i64,
    ttl: i64,
    unit: Option<String>,
}

fn cannot_parse(tenant: &str) -> Answer {
    Answer::message(400, tenant, "Cannot parse content")
}

/// Step 4: whole-request parse failures. Jackson-style leniencies (coercing "123" to a long,
/// truncating floats) are deliberately NOT modelled: the double is strict so client bugs surface.
fn parse(
    body: &[u8],
    url_tenant: &str,
    multi: bool,
    reject_names: &HashSet<String>,
) -> Result<Vec<ParsedPoint>, Answer> {
    let failed = || Answer::message(500, url_tenant, "Failed parsing content");
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        // A number serde_json cannot hold in f64 (1e400): Blueflood fails these with 500.
        Err(e) if e.to_string().contains("number out of range") => return Err(failed()),
        Err(_) => return Err(cannot_parse(url_tenant)),
    };
    let items = match value {
        Value::Null => return Err(failed()),
        Value::Array(items) => items,
        _ => return Err(cannot_parse(url_tenant)),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let obj = match item {
            Value::Null => return Err(failed()),
            Value::Object(o) => o,
            _ => return Err(cannot_parse(url_tenant)),
        };
        let p = parse_point(&obj, url_tenant, multi).ok_or_else(|| cannot_parse(url_tenant))?;
        if reject_names.contains(&p.metric_name) {
            return Err(cannot_parse(url_tenant));
        }
        out.push(p);
    }
    Ok(out)
}

/// None = the point makes the whole request fail to parse.
fn parse_point(obj: &Map<String, Value>, url_tenant: &str, multi: bool) -> Option<ParsedPoint> {
    const KEYS: [&str; 5] = [
        "metricName",
        "metricValue",
        "collectionTime",
        "ttlInSeconds",
        "unit",
    ];
    for k in obj.keys() {
        if !(KEYS.contains(&k.as_str()) || (multi && k == "tenantId")) {
            return None;
        }
    }
    let opt_string = |key: &str| -> Option<Option<String>> {
        match obj.get(key) {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => None,
        }
    };
    // Missing/null primitives default to 0 as Jackson does; validation then rejects them per point.
    let int = |key: &str| -> Option<i64> {
        match obj.get(key) {
            None | Some(Value::Null) => Some(0),
            Some(Value::Number(n)) => n.as_i64(),
            Some(_) => None,
        }
    };
    let metric_name = opt_string("metricName")?.unwrap_or_default();
    let unit = opt_string("unit")?;
    let tenant = if multi {
        opt_string("tenantId")?.unwrap_or_default()
    } else {
        url_tenant.to_string()
    };
    let collection_time = int("collectionTime")?;
    let ttl = int("ttlInSeconds")?;
    // ttlInSeconds is a Java int: out of int range fails parsing, and so does exactly i32::MAX.
    if ttl >= TTL_WHOLE_REQUEST_FAILURE || ttl < i64::from(i32::MIN) {
        return None;
    }
    let value = match obj.get("metricValue") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(PointValue::Number(n.as_f64()?)),
        Some(_) => Some(PointValue::NotANumber),
    };
    Some(ParsedPoint {
        tenant,
        metric_name,
        value,
        collection_time,
        ttl,
        unit,
    })
}

pub(super) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}
