//! Tests of the test doubles themselves: the Blueflood double must answer as the contract page
//! (`docs/reference/blueflood-ingest.md`) says, since the forwarder is proven against it; the
//! Keystone double must issue tokens the Blueflood double accepts. Also checks the support
//! helpers (ISO 8601 formatting, pickle frames).

use crate::support;

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};
use support::blueflood::{BluefloodDouble, Fault};
use support::keystone::{KeystoneDouble, civil_from_days, iso8601_utc_ms};
use support::{deflate, gzip, now_ms};

/// Generous: only bounds a hang, never measures speed.
const WAIT: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("client")
}

fn point(name: &str, ts: i64, value: f64) -> Value {
    json!({"metricName": name, "metricValue": value, "collectionTime": ts, "ttlInSeconds": 172800})
}

fn ingest_url(bf: &BluefloodDouble, tenant: &str) -> String {
    format!("{}/v2.0/{tenant}/ingest", bf.url())
}

async fn post_raw(
    url: &str,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> (u16, String, reqwest::header::HeaderMap) {
    let mut req = client().post(url).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.text().await.expect("body"), headers)
}

async fn post_json(url: &str, body: &Value) -> (u16, String) {
    let (s, b, _) = post_raw(
        url,
        body.to_string().into_bytes(),
        &[("content-type", "application/json")],
    )
    .await;
    (s, b)
}

#[tokio::test]
async fn plain_gzip_and_deflate_bodies_are_stored() {
    let bf = BluefloodDouble::start().await;
    let now = now_ms();
    let url = ingest_url(&bf, "t1");

    let (s, b) = post_json(
        &url,
        &json!([point("a.b", now, 1.5), point("a.c", now, 2.0)]),
    )
    .await;
    assert_eq!((s, b.as_str()), (200, ""));

    let body = json!([point("g.z", now, 3.0)]).to_string();
    let (s, _, headers) = post_raw(
        &url,
        gzip(body.as_bytes()),
        &[
            ("content-type", "application/json"),
            ("content-encoding", "gzip"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        headers.get("content-type").is_none(),
        "Blueflood sends no Content-Type"
    );

    let body = json!([point("d.f", now, 4.0)]).to_string();
    let (s, _, _) = post_raw(
        &url,
        deflate(body.as_bytes()),
        &[("content-encoding", "deflate")],
    )
    .await;
    assert_eq!(s, 200);

    let stored = bf.stored();
    let names: Vec<_> = stored.iter().map(|p| p.metric_name.as_str()).collect();
    assert_eq!(names, ["a.b", "a.c", "g.z", "d.f"]);
    assert!(stored.iter().all(|p| p.tenant == "t1"));
    assert_eq!(stored[0].metric_value, 1.5);
    assert_eq!(stored[0].collection_time, now);
    assert_eq!(stored[0].ttl_in_seconds, 172800);

    let reqs = bf.requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(reqs[1].content_encoding.as_deref(), Some("gzip"));
    assert_eq!(reqs[1].decompressed_len, body.len()); // "d.f" vs "g.z": same length
    assert!(reqs[1].compressed_len > 0);
    assert_eq!(reqs[0].points, 2);
    assert!(reqs.iter().all(|r| !r.had_tenant_id_header));
}

#[tokio::test]
async fn resending_is_an_upsert() {
    let bf = BluefloodDouble::start().await;
    let now = now_ms();
    let body = json!([point("a.b", now, 1.0)]);
    post_json(&ingest_url(&bf, "t1"), &body).await;
    post_json(&ingest_url(&bf, "t1"), &body).await;
    assert_eq!(bf.stored_count(), 1);
    assert_eq!(bf.write_count(), 2);
}

#[tokio::test]
async fn out_of_window_point_gives_207_listing_only_it() {
    let bf = BluefloodDouble::start().await;
    let now = 1_700_000_000_000;
    bf.set_now_ms(Some(now));
    let old = now - 3 * 24 * 3600 * 1000 - 1;
    let edge_past = now - 3 * 24 * 3600 * 1000;
    let edge_future = now + 10 * 60 * 1000;
    let (s, b) = post_json(
        &ingest_url(&bf, "t1"),
        &json!([
            point("ok.1", now, 1.0),
            point("old", old, 2.0),
            point("edge.past", edge_past, 3.0),
            point("edge.future", edge_future, 4.0),
        ]),
    )
    .await;
    assert_eq!(s, 207);
    let v: Value = serde_json::from_str(&b).unwrap();
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["metricName"], "old");
    assert_eq!(errors[0]["timestamp"], old);
    assert_eq!(errors[0]["source"], "collectionTime");
    assert_eq!(errors[0]["tenantId"], "t1");
    assert_eq!(bf.stored_count(), 3);
}

#[tokio::test]
async fn only_invalid_points_give_400_with_errors() {
    let bf = BluefloodDouble::start().await;
    let now = now_ms();
    let (s, b) = post_json(
        &ingest_url(&bf, "t1"),
        &json!([
            point("", now, 1.0),
            {"metricName": "s", "metricValue": "x", "collectionTime": now, "ttlInSeconds": 5},
            {"metricName": "ttl", "metricValue": 1, "collectionTime": now, "ttlInSeconds": 0},
        ]),
    )
    .await;
    assert_eq!(s, 400);
    let v: Value = serde_json::from_str(&b).unwrap();
    let sources: Vec<_> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sources, ["metricName", "metricValue", "ttlInSeconds"]);
    assert_eq!(bf.stored_count(), 0);
}

#[tokio::test]
async fn whole_request_parse_failures() {
    let bf = BluefloodDouble::start().await;
    let url = ingest_url(&bf, "t1");
    let now = now_ms();
    let cases: Vec<(String, u16, &str)> = vec![
        (
            json!([{"metricName": "a", "metricValue": 1, "collectionTime": now, "ttlInSeconds": 5, "extra": 1}]).to_string(),
            400,
            "Cannot parse content",
        ),
        (
            format!(r#"[{{"metricName":"a","metricValue":NaN,"collectionTime":{now},"ttlInSeconds":5}}]"#),
            400,
            "Cannot parse content",
        ),
        (point("a", now, 1.0).to_string(), 400, "Cannot parse content"),
        ("[{".to_string(), 400, "Cannot parse content"),
        (
            json!([{"metricName": "a", "metricValue": 1, "collectionTime": now, "ttlInSeconds": 2147483647i64}]).to_string(),
            400,
            "Cannot parse content",
        ),
        ("null".to_string(), 500, "Failed parsing content"),
        ("[null]".to_string(), 500, "Failed parsing content"),
        ("[]".to_string(), 400, "No valid metrics"),
    ];
    for (body, status, message) in cases {
        let (s, b, _) = post_raw(&url, body.clone().into_bytes(), &[]).await;
        assert_eq!(s, status, "body {body}");
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["errors"][0]["message"], message, "body {body}");
    }
    assert_eq!(bf.stored_count(), 0);
}

#[tokio::test]
async fn poison_name_fails_the_whole_request() {
    let bf = BluefloodDouble::start().await;
    bf.set_reject_names(vec!["bad.one".into()]);
    let now = now_ms();
    let url = ingest_url(&bf, "t1");
    let (s, _) = post_json(
        &url,
        &json!([point("good", now, 1.0), point("bad.one", now, 2.0)]),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = post_json(&url, &json!([point("good", now, 1.0)])).await;
    assert_eq!(s, 200);
    assert_eq!(bf.stored_count(), 1);
}

#[tokio::test]
async fn null_value_is_dropped_silently() {
    let bf = BluefloodDouble::start().await;
    let now = now_ms();
    let (s, b) = post_json(
        &ingest_url(&bf, "t1"),
        &json!([
            point("a", now, 1.0),
            {"metricName": "n", "metricValue": null, "collectionTime": now, "ttlInSeconds": 5},
            {"metricName": "m", "collectionTime": now, "ttlInSeconds": 5},
        ]),
    )
    .await;
    assert_eq!((s, b.as_str()), (200, ""));
    assert_eq!(bf.stored_count(), 1);
}

#[tokio::test]
async fn multi_uses_each_elements_tenant() {
    let bf = BluefloodDouble::start().await;
    let now = now_ms();
    let url = format!("{}/v2.0/url-tenant/ingest/multi", bf.url());
    let mut a = point("a", now, 1.0);
    a["tenantId"] = json!("ta");
    let b = point("b", now, 2.0);
    let (s, body) = post_json(&url, &json!([a, b])).await;
    assert_eq!(s, 207, "{body}");
    let stored = bf.stored();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].tenant, "ta");
    // tenantId is an unknown key on the single-tenant endpoint.
    let (s, _) = post_json(&ingest_url(&bf, "t"), &json!([a])).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn body_limit_is_measured_after_decompression() {
    let bf = BluefloodDouble::start().await;
    let url = ingest_url(&bf, "t1");
    // Plain body just over 1 MiB.
    let (s, b, headers) = post_raw(&url, vec![b' '; 1_048_577], &[]).await;
    assert_eq!((s, b.as_str()), (413, ""));
    assert_eq!(headers.get("connection").unwrap(), "close");

    // Exactly 1 MiB is allowed past the size check (then fails parsing: all whitespace).
    let (s, _, _) = post_raw(&url, vec![b' '; 1_048_576], &[]).await;
    assert_eq!(s, 400);

    // A small gzip body that inflates far past 1 MiB (a bomb): 413, bounded memory.
    let bomb = gzip(&vec![b' '; 16 * 1024 * 1024]);
    assert!(bomb.len() < 200_000);
    let (s, _, _) = post_raw(&url, bomb, &[("content-encoding", "gzip")]).await;
    assert_eq!(s, 413);
    let last = bf.requests().pop().unwrap();
    assert_eq!(last.decompressed_len, 1_048_577);
}

#[tokio::test]
async fn media_types_are_checked_before_routing() {
    let bf = BluefloodDouble::start().await;
    let url = ingest_url(&bf, "t1");
    let body = json!([point("a", now_ms(), 1.0)]).to_string().into_bytes();
    let (s, b, _) = post_raw(&url, body.clone(), &[("content-type", "text/plain")]).await;
    assert_eq!(s, 415);
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["errors"][0]["tenantId"], "");
    let (s, _, _) = post_raw(&url, body.clone(), &[("accept", "text/html")]).await;
    assert_eq!(s, 415);
    let (s, _, _) = post_raw(
        &url,
        body.clone(),
        &[
            ("content-type", "application/json; charset=utf-8"),
            ("accept", "*/*"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    // 415 wins over 404 in the decision order.
    let (s, _, _) = post_raw(
        &format!("{}/nope", bf.url()),
        body,
        &[("content-type", "text/plain")],
    )
    .await;
    assert_eq!(s, 415);
}

#[tokio::test]
async fn unknown_paths_404_wrong_method_405() {
    let bf = BluefloodDouble::start().await;
    let body = json!([point("a", now_ms(), 1.0)]).to_string().into_bytes();
    for path in [
        "/v2.0/t1/ingest/",
        "/v2.0/t1/ingest/multi/",
        "/v2.0//ingest",
        "/v1.0/t1/ingest",
        "/",
    ] {
        let (s, b, _) = post_raw(&format!("{}{path}", bf.url()), body.clone(), &[]).await;
        assert_eq!((s, b.as_str()), (404, ""), "{path}");
    }
    let resp = client().get(ingest_url(&bf, "t1")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers().get("allow").unwrap(), "POST");
    assert_eq!(bf.stored_count(), 0);
}

#[tokio::test]
async fn tenant_id_header_is_recorded() {
    let bf = BluefloodDouble::start().await;
    let body = json!([point("a", now_ms(), 1.0)]).to_string().into_bytes();
    post_raw(&ingest_url(&bf, "t1"), body, &[("tenantId", "evil")]).await;
    assert!(bf.requests()[0].had_tenant_id_header);
}

#[tokio::test]
async fn faults_are_served_in_order_then_normal_handling_resumes() {
    let bf = BluefloodDouble::start().await;
    let url = ingest_url(&bf, "t1");
    let body = json!([point("a", now_ms(), 1.0)]);
    bf.push_fault(Fault::TooManyRequests {
        retry_after: Some("2".into()),
    });
    bf.push_fault(Fault::Status(503));
    bf.push_fault(Fault::Accepted202);

    let (s, _, headers) = post_raw(&url, body.to_string().into_bytes(), &[]).await;
    assert_eq!(s, 429);
    assert_eq!(headers.get("retry-after").unwrap(), "2");
    assert_eq!(post_json(&url, &body).await.0, 503);
    assert_eq!(bf.stored_count(), 0);
    let (s, b) = post_json(&url, &body).await;
    assert_eq!(s, 202);
    assert!(b.contains("Timed out persisting metrics"));
    assert_eq!(bf.stored_count(), 1);
    assert_eq!(post_json(&url, &body).await.0, 200);
    let statuses: Vec<_> = bf.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 503, 202, 200]);
}

#[tokio::test]
async fn reset_fault_is_a_connection_error() {
    let bf = BluefloodDouble::start().await;
    let url = ingest_url(&bf, "t1");
    let body = json!([point("a", now_ms(), 1.0)]);
    bf.push_fault(Fault::Reset);
    let err = client()
        .post(&url)
        .body(body.to_string())
        .send()
        .await
        .expect_err("reset must not produce a response");
    assert!(!err.is_timeout(), "{err:?}");
    assert_eq!(bf.stored_count(), 0);
    assert_eq!(bf.requests()[0].status, 0);

    bf.push_fault(Fault::ResetAfterStore);
    assert!(
        client()
            .post(&url)
            .body(body.to_string())
            .send()
            .await
            .is_err()
    );
    assert_eq!(bf.stored_count(), 1);
    // Normal again afterwards.
    assert_eq!(post_json(&url, &body).await.0, 200);
}

#[tokio::test]
async fn delay_fault_longer_than_client_timeout_is_a_timeout_but_stores() {
    let bf = BluefloodDouble::start().await;
    bf.push_fault(Fault::Delay(Duration::from_secs(30)));
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = quick
        .post(ingest_url(&bf, "t1"))
        .body(json!([point("a", now_ms(), 1.0)]).to_string())
        .send()
        .await
        .expect_err("must time out");
    assert!(err.is_timeout(), "{err:?}");
    assert!(bf.wait_for_stored(1, WAIT).await);
}

#[tokio::test]
async fn down_then_up_on_the_same_port() {
    let bf = BluefloodDouble::start().await;
    let url = ingest_url(&bf, "t1");
    let c = client();
    let body = json!([point("a", now_ms(), 1.0)]).to_string();
    // Establish a pooled keep-alive connection first: going down must kill it too.
    assert_eq!(
        c.post(&url)
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    bf.set_down(true);
    // The pooled connection may die either before or during this request; both are errors.
    assert!(c.post(&url).body(body.clone()).send().await.is_err());
    assert!(c.post(&url).body(body.clone()).send().await.is_err());
    assert!(bf.refused_connections() >= 1);
    bf.set_down(false);
    assert_eq!(c.post(&url).body(body).send().await.unwrap().status(), 200);
    assert_eq!(bf.requests().len(), 2);
}

#[tokio::test]
async fn static_token_is_required() {
    let bf = BluefloodDouble::start().await;
    bf.require_token(Some("secret-token".into()));
    let url = ingest_url(&bf, "t1");
    let body = json!([point("a", now_ms(), 1.0)]).to_string();
    let resp = client().post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = client()
        .post(&url)
        .header("x-auth-token", "wrong")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let resp = client()
        .post(&url)
        .header("x-auth-token", "secret-token")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(bf.requests()[2].auth_token.as_deref(), Some("secret-token"));
}

async fn auth(ks: &KeystoneDouble, body: Value) -> (u16, Value) {
    let resp = client().post(ks.url()).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

fn api_key_body(user: &str, key: &str) -> Value {
    json!({"auth": {"RAX-KSKEY:apiKeyCredentials": {"username": user, "apiKey": key}}})
}

#[tokio::test]
async fn keystone_token_is_accepted_by_blueflood_until_revoked() {
    let ks = KeystoneDouble::start("alice", "k1").await;
    let bf = BluefloodDouble::start().await;
    bf.require_keystone(&ks);

    let (s, v) = auth(&ks, api_key_body("alice", "k1")).await;
    assert_eq!(s, 200);
    let token = v["access"]["token"]["id"].as_str().unwrap().to_string();
    let expires = v["access"]["token"]["expires"].as_str().unwrap();
    assert!(expires.ends_with('Z') && expires.len() == 24, "{expires}");
    assert_eq!(v["access"]["token"]["tenant"]["id"], "T");
    assert_eq!(v["access"]["user"]["name"], "alice");
    assert!(ks.token_is_valid(&token));

    let url = ingest_url(&bf, "T");
    let body = json!([point("a", now_ms(), 1.0)]).to_string();
    let send = |t: String| {
        let (url, body) = (url.clone(), body.clone());
        async move {
            client()
                .post(url)
                .header("x-auth-token", t)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(send(token.clone()).await, 200);
    assert_eq!(send("forged".into()).await, 401);

    // Password credentials work too, and every issue is a fresh token.
    let (s, v) = auth(
        &ks,
        json!({"auth": {"passwordCredentials": {"username": "alice", "password": "k1"}}}),
    )
    .await;
    assert_eq!(s, 200);
    assert_ne!(v["access"]["token"]["id"].as_str().unwrap(), token);
    assert_eq!(ks.issued_tokens().len(), 2);

    ks.revoke_all();
    assert_eq!(send(token).await, 401);
    assert_eq!(ks.auth_requests(), 2);
}

#[tokio::test]
async fn keystone_rotation_faults_and_expiry() {
    let ks = KeystoneDouble::start("alice", "old").await;
    assert_eq!(auth(&ks, api_key_body("alice", "old")).await.0, 200);
    ks.set_credentials("alice", "new");
    let (s, v) = auth(&ks, api_key_body("alice", "old")).await;
    assert_eq!(s, 401);
    assert_eq!(v["unauthorized"]["code"], 401);
    assert_eq!(auth(&ks, api_key_body("alice", "new")).await.0, 200);

    ks.push_fault(503);
    assert_eq!(auth(&ks, api_key_body("alice", "new")).await.0, 503);

    ks.set_token_ttl(Duration::ZERO);
    let (s, v) = auth(&ks, api_key_body("alice", "new")).await;
    assert_eq!(s, 200);
    assert!(!ks.token_is_valid(v["access"]["token"]["id"].as_str().unwrap()));
    assert_eq!(ks.auth_requests(), 5);
}

#[test]
fn iso8601_matches_known_dates_and_httpdate() {
    assert_eq!(iso8601_utc_ms(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(iso8601_utc_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    assert_eq!(
        iso8601_utc_ms(1_795_690_800_123),
        "2026-11-26T11:00:00.123Z"
    );
    assert_eq!(civil_from_days(-1), (1969, 12, 31));
    // Cross-check the civil date against httpdate over a spread of instants.
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut secs: u64 = 0;
    while secs < 7_000_000_000 {
        let iso = iso8601_utc_ms(secs as i64 * 1000);
        let http = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
        // "Sun, 06 Nov 1994 08:49:37 GMT"
        let f: Vec<&str> = http.split(' ').collect();
        let month = MONTHS.iter().position(|m| *m == f[2]).unwrap() + 1;
        let expect = format!("{}-{:02}-{}T{}.000Z", f[3], month, f[1], f[4]);
        assert_eq!(iso, expect);
        secs += 86_399 * 37 + 7;
    }
}

#[test]
fn pickle_frame_is_byte_identical_to_cpython_protocol_2() {
    // Expected bytes: pickle.dumps([('a.b',(1.0,2.5)),('c',(3.0,4.0))], protocol=2) in CPython.
    let expected: &[u8] = b"\x80\x02]q\x00(X\x03\x00\x00\x00a.bq\x01G?\xf0\x00\x00\x00\x00\x00\x00G@\x04\x00\x00\x00\x00\x00\x00\x86q\x02\x86q\x03X\x01\x00\x00\x00cq\x04G@\x08\x00\x00\x00\x00\x00\x00G@\x10\x00\x00\x00\x00\x00\x00\x86q\x05\x86q\x06e.";
    let frame = support::pickle_frame(&[("a.b", 1.0, 2.5), ("c", 3.0, 4.0)]);
    assert_eq!(&frame[..4], &(expected.len() as u32).to_be_bytes());
    assert_eq!(&frame[4..], expected);
    // A single point uses APPEND, not MARK..APPENDS.
    let expected: &[u8] = b"\x80\x02]q\x00X\x01\x00\x00\x00xq\x01G?\xf0\x00\x00\x00\x00\x00\x00G?\xf0\x00\x00\x00\x00\x00\x00\x86q\x02\x86q\x03a.";
    assert_eq!(&support::pickle_frame(&[("x", 1.0, 1.0)])[4..], expected);
}

#[test]
fn large_pickle_frames_decode() {
    // 1,500 points: crosses the 1000-item APPENDS batch and the 256-entry BINPUT memo range.
    let names: Vec<String> = (0..1500).map(|i| format!("m.{i}")).collect();
    let points: Vec<(&str, f64, f64)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), 1.7e9 + i as f64, i as f64 * 0.5))
        .collect();
    let frame = support::pickle_frame(&points);
    let v = serde_pickle::value_from_slice(&frame[4..], serde_pickle::DeOptions::new()).unwrap();
    let serde_pickle::Value::List(items) = v else {
        panic!("not a list: {v:?}")
    };
    assert_eq!(items.len(), 1500);
    let serde_pickle::Value::Tuple(last) = &items[1499] else {
        panic!()
    };
    assert_eq!(last[0], serde_pickle::Value::String("m.1499".into()));
    assert_eq!(
        last[1],
        serde_pickle::Value::Tuple(vec![
            serde_pickle::Value::F64(1.7e9 + 1499.0),
            serde_pickle::Value::F64(749.5)
        ])
    );
}

#[tokio::test]
async fn h2c_prior_knowledge_is_served() {
    let bf = BluefloodDouble::start().await;
    let c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(WAIT)
        .build()
        .unwrap();
    let resp = c
        .post(ingest_url(&bf, "t1"))
        .body(json!([point("a", now_ms(), 1.0)]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(bf.stored_count(), 1);
}
