//! End to end through real sockets: carbon senders → forwarder → the Blueflood double. Each
//! answer of the contract's table is checked against the ledger it must produce.

use crate::harness;
use crate::support;

use std::time::Duration;

use blueflood_forward::accounting::{BadInput, DropReason};
use blueflood_forward::config::settings::{BufferPolicy, Compression, Protocol};
use harness::{Forwarder, settings};
use support::blueflood::{BluefloodDouble, Fault};

const WAIT: Duration = Duration::from_secs(20);

/// `n` points named `{stem}.{i}` at `ts` with value `i + 0.5`.
fn points(stem: &str, n: usize, ts: f64) -> Vec<(String, f64, f64)> {
    (0..n)
        .map(|i| (format!("{stem}.{i}"), ts, i as f64 + 0.5))
        .collect()
}

fn frame(points: &[(String, f64, f64)]) -> Vec<u8> {
    let refs: Vec<(&str, f64, f64)> = points
        .iter()
        .map(|(n, t, v)| (n.as_str(), *t, *v))
        .collect();
    support::pickle_frame(&refs)
}

async fn send_pickle(f: &Forwarder, pts: &[(String, f64, f64)]) {
    let mut bytes = Vec::new();
    for chunk in pts.chunks(500) {
        bytes.extend(frame(chunk));
    }
    support::send_tcp(f.addr(Protocol::Pickle), &bytes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pickle_line_and_udp_points_reach_blueflood_exactly() {
    let bf = BluefloodDouble::start().await;
    let f = Forwarder::start(settings(&bf.url())).await;
    let ts = support::now_secs_f64().floor();
    send_pickle(&f, &points("pk", 1200, ts)).await;
    let lines: String = (0..300)
        .map(|i| format!("ln.{i} {}.25 {ts}\r\n", i))
        .collect();
    support::send_tcp(f.addr(Protocol::LineTcp), lines.as_bytes()).await;
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    for i in 0..10 {
        let dgram = format!("ud.{i} 7 {ts}\nud.{i}b 8 {ts}\n");
        udp.send_to(dgram.as_bytes(), f.addr(Protocol::LineUdp))
            .await
            .expect("send");
    }
    assert!(
        bf.wait_for_stored(1520, WAIT).await,
        "stored {}",
        bf.stored_count()
    );
    let s = f.settle(1520, WAIT).await;
    assert_eq!(s.received_pickle, 1200);
    assert_eq!(s.received_line_tcp, 300);
    assert_eq!(s.received_line_udp, 20);
    assert_eq!(s.delivered, 1520);
    assert_eq!(s.dropped_total(), 0);

    let stored = bf.stored();
    let ts_ms = (ts * 1000.0) as i64;
    let p7 = stored
        .iter()
        .find(|p| p.metric_name == "pre.pk.7")
        .expect("pk.7 stored");
    assert_eq!(
        (p7.collection_time, p7.metric_value, p7.ttl_in_seconds),
        (ts_ms, 7.5, 3600)
    );
    assert_eq!(p7.tenant, "t1");
    let l3 = stored
        .iter()
        .find(|p| p.metric_name == "pre.ln.3")
        .expect("ln.3 stored");
    assert_eq!((l3.collection_time, l3.metric_value), (ts_ms, 3.25));
    assert!(
        stored
            .iter()
            .any(|p| p.metric_name == "pre.ud.9b" && p.metric_value == 8.0)
    );
    // Every request gzipped, JSON, and without the forbidden tenantId header.
    for r in bf.requests() {
        assert_eq!(r.content_encoding.as_deref(), Some("gzip"));
        assert!(
            r.content_type
                .as_deref()
                .is_some_and(|c| c.contains("application/json"))
        );
        assert!(!r.had_tenant_id_header);
        assert!(r.decompressed_len <= 1_048_576);
    }
    let s = f.stop().await;
    assert_eq!(s.delivered, 1520);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_out_of_window_and_bad_points_are_counted_not_sent() {
    let bf = BluefloodDouble::start().await;
    let f = Forwarder::start(settings(&bf.url())).await;
    let ts = support::now_secs_f64().floor();
    let lines = format!(
        "ok.1 1 {ts}\nnan.1 nan {ts}\ninf.1 inf {ts}\nold.1 1 {}\nfuture.1 1 {}\nbad.1 x {ts}\ntoo many fields 1 2\nnow.1 5 -1\n",
        ts - 4.0 * 86400.0,
        ts + 3600.0
    );
    support::send_tcp(f.addr(Protocol::LineTcp), lines.as_bytes()).await;
    f.wait_until(WAIT, "8 received", |s| s.received() == 8)
        .await;
    assert!(bf.wait_for_stored(2, WAIT).await);
    let s = f.settle(8, WAIT).await;
    assert_eq!(s.delivered, 2);
    assert_eq!(s.dropped(DropReason::Nan), 2);
    assert_eq!(s.dropped(DropReason::OutOfWindow), 2);
    assert_eq!(s.dropped(DropReason::DecodeError), 2);
    let now = bf
        .stored()
        .into_iter()
        .find(|p| p.metric_name == "pre.now.1")
        .expect("now.1");
    assert!(
        (now.collection_time - support::now_ms()).abs() < 60_000,
        "-1 means now"
    );
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_207_drops_exactly_the_rejected_points_and_never_resends_the_stored() {
    let bf = BluefloodDouble::start().await;
    let mut cfg = settings(&bf.url());
    // The forwarder's window is wider than the server's: the server must reject some.
    cfg.ingest.max_past = Duration::from_secs(30 * 86400);
    cfg.forward.interval = Duration::from_millis(300);
    let f = Forwarder::start(cfg).await;
    let ts = support::now_secs_f64().floor();
    let mut pts = points("good", 50, ts);
    pts.extend(points("stale", 5, ts - 5.0 * 86400.0));
    send_pickle(&f, &pts).await;
    let s = f.settle(55, WAIT).await;
    assert_eq!(s.delivered, 50);
    assert_eq!(s.dropped(DropReason::RejectedByBlueflood), 5);
    assert_eq!(bf.stored_count(), 50);
    assert!(bf.requests().iter().any(|r| r.status == 207));
    // Nothing re-sent: exactly the requests needed, each point stored once.
    let mut names: Vec<_> = bf.stored().into_iter().map(|p| p.metric_name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 50);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_point_in_a_batch_of_10000_costs_exactly_one_point() {
    let bf = BluefloodDouble::start().await;
    bf.set_reject_names(vec!["pre.p.4321".into()]);
    let mut cfg = settings(&bf.url());
    cfg.forward.interval = Duration::from_millis(500);
    let f = Forwarder::start(cfg).await;
    send_pickle(&f, &points("p", 10_000, support::now_secs_f64().floor())).await;
    let s = f.settle(10_000, WAIT).await;
    assert_eq!(s.received(), 10_000);
    assert_eq!(s.delivered, 9_999);
    assert_eq!(s.dropped(DropReason::RejectedByBlueflood), 1);
    assert_eq!(s.dropped_total(), 1);
    assert_eq!(bf.stored_count(), 9_999);
    assert!(!bf.stored().iter().any(|p| p.metric_name == "pre.p.4321"));
    let bad = bf.requests().iter().filter(|r| r.status == 400).count();
    assert!(bad >= 2, "bisecting takes several 400s, saw {bad}");
    f.stop().await;
}

/// Sends 200 points through one fault and checks they all arrive, with at least one retry.
async fn survives(
    fault: Fault,
    expect_retry: bool,
) -> blueflood_forward::accounting::LedgerSnapshot {
    let bf = BluefloodDouble::start().await;
    bf.push_fault(fault);
    let f = Forwarder::start(settings(&bf.url())).await;
    send_pickle(&f, &points("f", 200, support::now_secs_f64().floor())).await;
    assert!(
        bf.wait_for_stored(200, WAIT).await,
        "stored {}",
        bf.stored_count()
    );
    let s = f.settle(200, WAIT).await;
    assert_eq!(s.delivered, 200);
    assert_eq!(s.dropped_total(), 0);
    assert_eq!(bf.stored_count(), 200, "no point stored twice");
    if expect_retry {
        assert!(s.retries >= 1, "{s:#?}");
    }
    f.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_answers_are_retried_until_stored() {
    for status in [500, 502, 503, 504, 408] {
        survives(Fault::Status(status), true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_honours_retry_after() {
    let started = std::time::Instant::now();
    survives(
        Fault::TooManyRequests {
            retry_after: Some("1".into()),
        },
        true,
    )
    .await;
    // Not a timing threshold on speed: a lower bound the client must respect.
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retried before Retry-After"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_timeouts_and_unauthorised_answers_keep_the_data() {
    survives(Fault::Reset, true).await;
    survives(Fault::Delay(Duration::from_secs(4)), true).await;
    // 401/403 without a token provider: re-authenticate once (a no-op), retry, stored.
    survives(Fault::Status(401), false).await;
    survives(Fault::Status(403), false).await;
    // 415 is our bug: kept and retried, never dropped.
    survives(Fault::Status(415), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_202_counts_as_delivered() {
    let s = survives(Fault::Accepted202, false).await;
    assert_eq!(s.requests_failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answer_413_splits_the_batch() {
    let bf = BluefloodDouble::start().await;
    bf.push_fault(Fault::Status(413));
    let mut cfg = settings(&bf.url());
    cfg.forward.interval = Duration::from_millis(300);
    let f = Forwarder::start(cfg).await;
    send_pickle(&f, &points("big", 2000, support::now_secs_f64().floor())).await;
    assert!(bf.wait_for_stored(2000, WAIT).await);
    let s = f.settle(2000, WAIT).await;
    assert_eq!((s.delivered, s.dropped_total()), (2000, 0));
    let reqs = bf.requests();
    let first_413 = reqs.iter().position(|r| r.status == 413).expect("413 seen");
    // After the 413, the same points went out in smaller requests.
    let biggest_after = reqs[first_413 + 1..]
        .iter()
        .map(|r| r.points)
        .max()
        .unwrap_or(0);
    assert!(biggest_after < reqs[first_413].points.max(2000), "{reqs:?}");
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_followed_by_recovery_loses_nothing_and_retries_without_new_data() {
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let f = Forwarder::start(settings(&bf.url())).await;
    send_pickle(&f, &points("o", 3000, support::now_secs_f64().floor())).await;
    // All sent before the outage ends; no new data arrives afterwards.
    f.wait_until(WAIT, "some retries", |s| s.retries >= 3).await;
    bf.set_down(false);
    assert!(
        bf.wait_for_stored(3000, WAIT).await,
        "stored {}",
        bf.stored_count()
    );
    let s = f.settle(3000, WAIT).await;
    assert_eq!((s.delivered, s.dropped_total()), (3000, 0));
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_never_exceed_the_limit() {
    let bf = BluefloodDouble::start().await;
    let mut cfg = settings(&bf.url());
    cfg.forward.max_body_bytes = 4096;
    cfg.forward.compression = Compression::None;
    let f = Forwarder::start(cfg).await;
    send_pickle(&f, &points("lim", 1000, support::now_secs_f64().floor())).await;
    assert!(bf.wait_for_stored(1000, WAIT).await);
    for r in bf.requests() {
        assert!(r.decompressed_len <= 4096, "{}", r.decompressed_len);
        assert_eq!(r.content_encoding, None);
    }
    assert!(bf.requests().len() >= 1000 * 90 / 4096);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_drops_the_newest_and_counts_them() {
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let mut cfg = settings(&bf.url());
    cfg.buffer.max_bytes = 64 * 1024;
    cfg.forward.concurrency = 1;
    cfg.forward.max_body_bytes = 8192;
    let f = Forwarder::start(cfg).await;
    send_pickle(&f, &points("full", 5000, support::now_secs_f64().floor())).await;
    f.wait_until(WAIT, "5000 received", |s| s.received() == 5000)
        .await;
    let s = f.snapshot();
    assert!(s.dropped(DropReason::BufferFull) > 0, "{s:#?}");
    assert!(s.buffered_bytes <= 64 * 1024);
    bf.set_down(false);
    let s = f.settle(5000, WAIT).await;
    assert_eq!(s.delivered + s.dropped(DropReason::BufferFull), 5000);
    assert_eq!(bf.stored_count() as u64, s.delivered);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_policy_back_pressures_instead_of_dropping() {
    let bf = BluefloodDouble::start().await;
    bf.set_delay(Some(Duration::from_millis(20)));
    let mut cfg = settings(&bf.url());
    cfg.buffer.max_bytes = 32 * 1024;
    cfg.buffer.policy = BufferPolicy::Block;
    cfg.forward.concurrency = 1;
    cfg.forward.max_body_bytes = 16 * 1024;
    let f = Forwarder::start(cfg).await;
    send_pickle(&f, &points("blk", 4000, support::now_secs_f64().floor())).await;
    assert!(
        bf.wait_for_stored(4000, WAIT).await,
        "stored {}",
        bf.stored_count()
    );
    let s = f.settle(4000, WAIT).await;
    assert_eq!((s.delivered, s.dropped_total()), (4000, 0));
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_what_is_buffered_at_once() {
    let bf = BluefloodDouble::start().await;
    let mut cfg = settings(&bf.url());
    cfg.forward.interval = Duration::from_secs(3600);
    let f = Forwarder::start(cfg).await;
    send_pickle(&f, &points("sd", 700, support::now_secs_f64().floor())).await;
    f.wait_until(WAIT, "700 received", |s| s.received() == 700)
        .await;
    assert_eq!(bf.stored_count(), 0, "the interval holds points back");
    let s = f.stop().await;
    assert_eq!((s.delivered, s.dropped_total()), (700, 0));
    assert_eq!(bf.stored_count(), 700);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_deadline_counts_what_could_not_be_sent() {
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let mut cfg = settings(&bf.url());
    cfg.shutdown_timeout = Duration::from_millis(500);
    let f = Forwarder::start(cfg).await;
    send_pickle(&f, &points("lost", 800, support::now_secs_f64().floor())).await;
    f.wait_until(WAIT, "800 received", |s| s.received() == 800)
        .await;
    let s = f.stop().await;
    assert_eq!(s.dropped(DropReason::ShutdownTimeout), 800, "{s:#?}");
    assert_eq!(s.delivered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_senders_are_refused_and_good_senders_still_served() {
    let bf = BluefloodDouble::start().await;
    let f = Forwarder::start(settings(&bf.url())).await;
    let addr = f.addr(Protocol::Pickle);
    let marker = std::env::temp_dir().join(format!("bff-pwned-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let evil = format!("cos\nsystem\n(S'touch {}'\ntR.", marker.display());
    let mut evil_frame = (evil.len() as u32).to_be_bytes().to_vec();
    evil_frame.extend(evil.as_bytes());
    support::send_tcp(addr, &evil_frame).await;
    // A length that claims 4 GiB: refused before anything is buffered.
    support::send_tcp(addr, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await;
    // Zero-length frame, then garbage.
    support::send_tcp(addr, &[0, 0, 0, 0]).await;
    support::send_tcp(addr, &[0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 0x00]).await;
    // A truncated frame: the connection closes mid-frame.
    let good = frame(&points("t", 3, support::now_secs_f64().floor()));
    support::send_tcp(addr, &good[..good.len() - 3]).await;
    // A nesting bomb.
    let mut bomb = b"\x80\x02".to_vec();
    // 100,000 lists, each appended into the one below: nested 100,000 deep.
    bomb.extend(std::iter::repeat_n(b']', 100_000));
    bomb.extend(std::iter::repeat_n(b'a', 99_999));
    bomb.push(b'.');
    let mut bomb_frame = (bomb.len() as u32).to_be_bytes().to_vec();
    bomb_frame.extend(bomb);
    support::send_tcp(addr, &bomb_frame).await;
    // A line-protocol junk sender and an overlong line.
    let mut junk = vec![b'x'; 100_000];
    junk.extend(b"\n\x00\x01\x02\xff\n");
    support::send_tcp(f.addr(Protocol::LineTcp), &junk).await;

    send_pickle(&f, &points("good", 10, support::now_secs_f64().floor())).await;
    assert!(bf.wait_for_stored(10, WAIT).await);
    // Each hostile connection is served concurrently: wait for all of them to be counted.
    f.wait_until(WAIT, "every hostile input counted", |s| {
        s.bad_input(BadInput::PickleFrame) >= 3
            && s.bad_input(BadInput::TruncatedFrame) >= 1
            && s.bad_input(BadInput::LineTooLong) >= 1
            && s.received_line_tcp >= 1
    })
    .await;
    let s = f.settle(11, WAIT).await;
    assert!(!marker.exists(), "the pickle ran code");
    assert_eq!(s.delivered, 10);
    assert_eq!(
        s.bad_input(BadInput::PickleFrame),
        3,
        "evil, garbage, bomb: {s:#?}"
    );
    assert_eq!(
        s.dropped(DropReason::DecodeError),
        1,
        "the binary junk line"
    );
    assert_eq!(s.bad_input(BadInput::FrameTooLarge), 1);
    assert_eq!(s.bad_input(BadInput::EmptyFrame), 1);
    assert_eq!(s.bad_input(BadInput::TruncatedFrame), 1);
    assert_eq!(s.bad_input(BadInput::LineTooLong), 1);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_without_an_interface_serves_ipv4_and_ipv6() {
    let bf = BluefloodDouble::start().await;
    let mut cfg = settings(&bf.url());
    for l in &mut cfg.listeners {
        l.interface = None;
    }
    let f = Forwarder::start(cfg).await;
    let port = f.addr(Protocol::LineTcp).port();
    let ts = support::now_secs_f64().floor();
    support::send_tcp(
        ([127, 0, 0, 1], port).into(),
        format!("v4.a 1 {ts}\n").as_bytes(),
    )
    .await;
    let v6: std::net::SocketAddr = format!("[::1]:{port}").parse().expect("addr");
    let expected = if tokio::net::TcpStream::connect(v6).await.is_ok() {
        support::send_tcp(v6, format!("v6.a 1 {ts}\n").as_bytes()).await;
        2
    } else {
        // A host without IPv6 (the fallback binds IPv4 alone): nothing more to check.
        1
    };
    assert!(bf.wait_for_stored(expected, WAIT).await);
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_deadline_counts_points_held_by_a_blocked_flush_loop() {
    let bf = BluefloodDouble::start().await;
    bf.set_down(true);
    let mut cfg = settings(&bf.url());
    cfg.shutdown_timeout = Duration::from_millis(500);
    // One slot, small bodies: the flush loop waits for the slot holding points it has taken.
    cfg.forward.concurrency = 1;
    cfg.forward.max_body_bytes = 1024;
    let f = Forwarder::start(cfg).await;
    send_pickle(&f, &points("held", 3000, support::now_secs_f64().floor())).await;
    f.wait_until(WAIT, "3000 received", |s| s.received() == 3000)
        .await;
    let s = f.stop().await;
    assert_eq!(s.dropped(DropReason::ShutdownTimeout), 3000, "{s:#?}");
    assert_eq!((s.buffered_points, s.in_flight_points), (0, 0));
}
