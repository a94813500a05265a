//! Hostile input through the running binary (a child process on real sockets): each case is
//! counted under its reason in `/metrics`, and the listener keeps serving a good sender
//! afterwards. Complements `forward_e2e::hostile_senders_are_refused_and_good_senders_still_served`
//! (in-process) with the cases it does not cover.

use crate::reliability_child;
use crate::support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reliability_child::{Child, metric, n, spawn};
use support::blueflood::BluefloodDouble;
use support::{closed_by_server, now_whole_secs};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(30);

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

/// Sends `k` good line points named `{stem}.m{i}` and waits until the double stores them:
/// the listener still serves good senders.
async fn good_sender_still_served(c: &Child, bf: &BluefloodDouble, stem: &str, k: usize) {
    let before = bf.stored_count();
    let ts = now_whole_secs();
    let text = support::numbered_lines(stem, k, ts);
    support::send_tcp(c.line, text.as_bytes()).await;
    let names: Vec<String> = (0..k).map(|i| format!("{stem}.p{i}")).collect();
    let pts: Vec<(&str, f64, f64)> = names.iter().map(|s| (s.as_str(), ts, 1.0)).collect();
    support::send_tcp(c.pickle, &support::pickle_frame(&pts)).await;
    assert!(
        bf.wait_for_stored(before + 2 * k, WAIT).await,
        "{}: good sender not served after the hostile input ({} of {} stored); log:\n{}",
        c.case,
        bf.stored_count() - before,
        2 * k,
        c.log_tail(20)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pickles_that_try_to_run_code_run_nothing() {
    let case =
        "code-running pickles (GLOBAL/STACK_GLOBAL+REDUCE, INST, OBJ, NEWOBJ, BUILD, PERSID)";
    let bf = BluefloodDouble::start().await;
    let c = spawn(case, &bf.url(), &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("pwned");
    let m = marker.display().to_string();
    let touch = format!("touch {m}");
    let t = touch.as_bytes();
    let mut evil: Vec<(&str, Vec<u8>)> = Vec::new();
    evil.push((
        "GLOBAL+REDUCE (protocol 0)",
        [b"cos\nsystem\n(S'", t, b"'\ntR."].concat(),
    ));
    let mut sg = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c".to_vec();
    sg.push(t.len() as u8);
    sg.extend_from_slice(t);
    sg.extend_from_slice(b"\x85R.");
    evil.push(("STACK_GLOBAL+REDUCE (protocol 4)", sg));
    evil.push(("INST", [b"(S'", t, b"'\nios\nsystem\n."].concat()));
    evil.push(("OBJ", [b"(cos\nsystem\nS'", t, b"'\no."].concat()));
    evil.push(("NEWOBJ", b"\x80\x02cos\nsystem\n)\x81.".to_vec()));
    evil.push(("BUILD", b"\x80\x02]}b.".to_vec()));
    evil.push(("PERSID", b"Pfoo\n.".to_vec()));
    evil.push(("BINPERSID", b"\x80\x02X\x03\x00\x00\x00fooQ.".to_vec()));
    // All on one connection, then a good frame on the same connection.
    let mut stream = Vec::new();
    for (_, p) in &evil {
        stream.extend(framed(p));
    }
    let ts = now_whole_secs();
    stream.extend(support::pickle_frame(&[("after.evil", ts, 1.0)]));
    support::send_tcp(c.pickle, &stream).await;
    assert!(
        bf.wait_for_stored(1, WAIT).await,
        "{case}: the good frame after the evil ones on the same connection was not delivered"
    );
    let mets = c.metrics().await;
    assert_eq!(
        metric(&mets, "bad_input_total{reason=\"pickle_frame\"}"),
        evil.len() as u64,
        "{case}: each of {:?} must count as pickle_frame",
        evil.iter().map(|e| e.0).collect::<Vec<_>>()
    );
    good_sender_still_served(&c, &bf, "good", 5).await;
    c.close_books(11, WAIT).await;
    assert!(!marker.exists(), "{case}: a pickle ran code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_pickle_frames_are_counted_by_reason() {
    let case = "hostile pickle frames";
    let bf = BluefloodDouble::start().await;
    let c = spawn(case, &bf.url(), &[]);
    let ts = now_whole_secs();
    // Frames refused whole, on one connection (each is its own frame, the stream goes on).
    let mut nest = b"\x80\x02".to_vec();
    nest.extend(std::iter::repeat_n(b']', 200_000));
    let whole = [
        ("nesting bomb", nest),
        // BINUNICODE claiming 64 MiB in a 12-byte frame.
        (
            "64 MiB string claim",
            b"\x80\x02]X\x00\x00\x00\x04abc".to_vec(),
        ),
        // BINGET of a memo slot never PUT.
        ("memo GET of a missing slot", b"\x80\x02]h\x05a.".to_vec()),
        ("top level dict", b"\x80\x02}.".to_vec()),
        ("top level int", b"\x80\x02K\x05.".to_vec()),
    ];
    let mut stream = Vec::new();
    for (_, p) in &whole {
        stream.extend(framed(p));
    }
    // Per-point shapes: a list of 3 ints, and two 3-tuples (name, ts, value): 5 decode errors.
    stream.extend(framed(b"\x80\x02](K\x01K\x02K\x03e."));
    let three = |name: &str| {
        let mut p = vec![b'X'];
        p.extend((name.len() as u32).to_le_bytes());
        p.extend(name.as_bytes());
        p.push(b'G');
        p.extend(ts.to_be_bytes());
        p.extend(b"K\x01\x87");
        p
    };
    stream.extend(framed(
        &[
            b"\x80\x02](".as_slice(),
            &three("t.a"),
            &three("t.b"),
            b"e.",
        ]
        .concat(),
    ));
    stream.extend(framed(&[]));
    stream.extend(support::pickle_frame(&[("after.shapes", ts, 1.0)]));
    support::send_tcp(c.pickle, &stream).await;
    // A length of 0xFFFFFFFF closes its connection; a frame cut by the peer is truncated.
    support::send_tcp(c.pickle, &[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await;
    let good = support::pickle_frame(&[("cut", ts, 1.0)]);
    support::send_tcp(c.pickle, &good[..good.len() - 2]).await;
    assert!(
        bf.wait_for_stored(1, WAIT).await,
        "{case}: frame after the shapes lost"
    );
    let s = c
        .wait_status(WAIT, "every hostile frame counted", |s| {
            let b = &s["ledger"]["bad_input"];
            n(&b["frame_too_large"]) >= 1 && n(&b["truncated_frame"]) >= 1
        })
        .await;
    let mets = c.metrics().await;
    let expect = [
        (
            "bad_input_total{reason=\"pickle_frame\"}",
            whole.len() as u64,
        ),
        ("bad_input_total{reason=\"empty_frame\"}", 1),
        ("bad_input_total{reason=\"frame_too_large\"}", 1),
        ("bad_input_total{reason=\"truncated_frame\"}", 1),
        ("datapoints_dropped_total{reason=\"decode_error\"}", 5),
    ];
    for (series, want) in expect {
        assert_eq!(
            metric(&mets, series),
            want,
            "{case}: {series} (frames: {:?}); /status {s:#}",
            whole.iter().map(|w| w.0).collect::<Vec<_>>()
        );
    }
    good_sender_still_served(&c, &bf, "good", 5).await;
    c.close_books(1 + 5 + 10, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_and_values_are_dropped_or_passed_exactly() {
    let case = "names with newline/NUL/invalid UTF-8/10,000 chars; NaN/inf/bool values";
    let bf = BluefloodDouble::start().await;
    let c = spawn(case, &bf.url(), &[]);
    let ts = now_whole_secs();
    // Line protocol: (line, outcome).
    let long = "n".repeat(10_000);
    let mut lines: Vec<Vec<u8>> = vec![
        format!("{long} 1 {ts}").into_bytes(), // decode_error (name_too_long)
        [
            b"bad.\xff\xfe.utf8 1 ".as_slice(),
            ts.to_string().as_bytes(),
        ]
        .concat(), // decode_error
        format!("v.nan nan {ts}").into_bytes(), // nan
        format!("v.inf inf {ts}").into_bytes(), // nan
        format!("v.ninf -Infinity {ts}").into_bytes(), // nan
        format!("v.bool True {ts}").into_bytes(), // decode_error (bad_value)
        b"v.ts 1 yesterday".to_vec(),          // decode_error (bad_timestamp)
        format!("v.four 1 {ts} extra").into_bytes(), // decode_error (field_count)
        format!("nul.\0.name 1 {ts}").into_bytes(), // delivered, name as sent
        format!("ok.line 2.5 {ts}").into_bytes(), // delivered
    ];
    let mut text = Vec::new();
    for l in lines.iter_mut() {
        text.append(l);
        text.push(b'\n');
    }
    support::send_tcp(c.line, &text).await;
    // Pickle: names with newline and NUL pass through exactly (JSON-escaped on the wire);
    // invalid UTF-8 (SHORT_BINSTRING) and 10,000 chars are decode errors; True is 1.0.
    let mut p = b"\x80\x02](".to_vec();
    let point = |p: &mut Vec<u8>, name_op: &[u8], value: &[u8]| {
        p.extend_from_slice(name_op);
        p.push(b'G');
        p.extend(ts.to_be_bytes());
        p.extend_from_slice(value);
        p.extend(b"\x86\x86");
    };
    let uni = |s: &str| {
        let mut v = vec![b'X'];
        v.extend((s.len() as u32).to_le_bytes());
        v.extend(s.as_bytes());
        v
    };
    point(&mut p, &uni("p.new\nline"), b"K\x01");
    point(&mut p, &uni("p.nul\0byte"), b"K\x02");
    point(&mut p, b"U\x04p.\xff\xfe", b"K\x03"); // invalid UTF-8 name: decode_error
    point(&mut p, &uni(&long), b"K\x04"); // decode_error
    point(&mut p, &uni("p.bool"), b"\x88"); // NEWTRUE: 1.0
    let mut nan = vec![b'G'];
    nan.extend(f64::NAN.to_be_bytes());
    point(&mut p, &uni("p.nan"), &nan); // nan
    let mut inf = vec![b'G'];
    inf.extend(f64::INFINITY.to_be_bytes());
    point(&mut p, &uni("p.inf"), &inf); // nan
    p.extend(b"e.");
    support::send_tcp(c.pickle, &framed(&p)).await;

    let s = c.settle(10 + 7, WAIT).await;
    let mets = c.metrics().await;
    assert_eq!(
        metric(&mets, "datapoints_dropped_total{reason=\"decode_error\"}"),
        5 + 2,
        "{case}: decode_error (line: long name, bad UTF-8, bool, bad ts, 4 fields; pickle: bad UTF-8, long name); /status {s:#}"
    );
    assert_eq!(
        metric(&mets, "datapoints_dropped_total{reason=\"nan\"}"),
        3 + 2,
        "{case}: nan (line nan/inf/-Infinity, pickle NaN/inf); /status {s:#}"
    );
    let stored: HashMap<String, f64> = bf
        .stored()
        .into_iter()
        .map(|p| (p.metric_name, p.metric_value))
        .collect();
    let want = [
        ("pre.nul.\0.name", 1.0),
        ("pre.ok.line", 2.5),
        ("pre.p.new\nline", 1.0),
        ("pre.p.nul\0byte", 2.0),
        ("pre.p.bool", 1.0),
    ];
    for (name, v) in want {
        assert_eq!(
            stored.get(name),
            Some(&v),
            "{case}: {name:?} not stored exactly; stored: {stored:?}"
        );
    }
    assert_eq!(stored.len(), want.len(), "{case}: stored {stored:?}");
    good_sender_still_served(&c, &bf, "good", 5).await;
    c.close_books(17 + 10, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_junk_and_a_1mb_line_without_newline_are_counted() {
    let case = "line junk and a 1 MB line with no newline";
    let bf = BluefloodDouble::start().await;
    let c = spawn(case, &bf.url(), &[]);
    let ts = now_whole_secs();
    // 1 MB with no newline, then the connection closes.
    support::send_tcp(c.line, &vec![b'x'; 1 << 20]).await;
    // 1 MB with no newline, then a newline and a good line on the same connection.
    let mut then_good = vec![b'y'; 1 << 20];
    then_good.extend(format!("\nafter.mb 7 {ts}\n").as_bytes());
    support::send_tcp(c.line, &then_good).await;
    // Binary junk lines.
    let mut junk: Vec<u8> = (0..=255u8)
        .cycle()
        .take(4000)
        .filter(|b| *b != b'\n')
        .collect();
    junk.extend(b"\n\x00\x00\x00\n\r\n \t \n");
    support::send_tcp(c.line, &junk).await;
    assert!(
        bf.wait_for_stored(1, WAIT).await,
        "{case}: good line after 1 MB lost"
    );
    let s = c
        .wait_status(WAIT, "both 1 MB lines counted", |s| {
            n(&s["ledger"]["bad_input"]["line_too_long"]) >= 2
        })
        .await;
    let mets = c.metrics().await;
    assert_eq!(
        metric(&mets, "bad_input_total{reason=\"line_too_long\"}"),
        2,
        "{case}: line_too_long; /status {s:#}"
    );
    good_sender_still_served(&c, &bf, "good", 5).await;
    let s = c.close_books(0, WAIT).await;
    assert_eq!(
        n(&s["ledger"]["delivered"]),
        11,
        "{case}: only the good lines delivered; /status {s:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_garbage_is_counted_and_good_datagrams_served() {
    let case = "UDP garbage";
    let bf = BluefloodDouble::start().await;
    let c = spawn(case, &bf.url(), &[]);
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("udp");
    let ts = now_whole_secs();
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // The single datagrams that matter go first, while the socket buffer is empty.
    sock.send_to(&[], c.udp).await.expect("empty datagram");
    // A 60,000-byte datagram with no newline: over max_line_bytes.
    sock.send_to(&vec![b'z'; 60_000], c.udp).await.expect("big");
    // Good lines mixed with garbage in one datagram.
    let mixed = format!("udp.a 1 {ts}\n\x01\x02garbage\nudp.b 2 {ts}\n");
    sock.send_to(mixed.as_bytes(), c.udp).await.expect("mixed");
    // 200 random datagrams of up to 1400 bytes (no newline inside: each is one bad line),
    // paced so that the receive buffer does not overflow.
    for _ in 0..200 {
        let len = (next() % 1400) as usize + 1;
        let d: Vec<u8> = (0..len)
            .map(|_| match (next() & 0xff) as u8 {
                b'\n' => b'?',
                b => b,
            })
            .collect();
        sock.send_to(&d, c.udp).await.expect("send");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        bf.wait_for_stored(2, WAIT).await,
        "{case}: good UDP lines lost"
    );
    let s = c
        .wait_status(WAIT, "the big datagram counted", |s| {
            n(&s["ledger"]["bad_input"]["line_too_long"]) >= 1
        })
        .await;
    let mets = c.metrics().await;
    assert_eq!(
        metric(&mets, "bad_input_total{reason=\"line_too_long\"}"),
        1,
        "{case}: {s:#}"
    );
    let udp = metric(&mets, "datapoints_received_total{protocol=\"line_udp\"}");
    let dec = metric(&mets, "datapoints_dropped_total{reason=\"decode_error\"}");
    // Every line received over UDP but the two good ones is a decode error (the random
    // datagrams and the garbage line); UDP may lose a datagram, so count from what arrived.
    assert!(udp >= 3, "{case}: received over UDP {udp}; {s:#}");
    assert_eq!(
        dec,
        udp - 2,
        "{case}: decode_error; received over UDP {udp}; {s:#}"
    );
    if udp < 203 {
        eprintln!("{case}: {} random datagrams lost by the socket", 203 - udp);
    }
    good_sender_still_served(&c, &bf, "good", 5).await;
    c.close_books(udp + 10, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_senders_are_closed_by_the_idle_timeout() {
    let case = "slowloris: silent senders with --idle-timeout 1";
    let bf = BluefloodDouble::start().await;
    let c = spawn(case, &bf.url(), &["--idle-timeout", "1"]);
    let mut conns = Vec::new();
    for i in 0..20 {
        let addr = if i % 2 == 0 { c.line } else { c.pickle };
        let mut s = TcpStream::connect(addr).await.expect("connect");
        // Half a line / half a frame header, then silence.
        s.write_all(if i % 2 == 0 {
            b"half.a.li"
        } else {
            b"\x00\x00"
        })
        .await
        .expect("write");
        conns.push(s);
    }
    let t0 = Instant::now();
    for (i, s) in conns.iter_mut().enumerate() {
        assert!(
            closed_by_server(s, Duration::from_secs(10)).await,
            "{case}: connection {i} still open 10 s after going silent"
        );
    }
    eprintln!(
        "{case}: all 20 closed {:?} after going silent",
        t0.elapsed()
    );
    c.wait_status(WAIT, "no connection open", |s| {
        n(&s["connections"]["open"]) == 0
    })
    .await;
    good_sender_still_served(&c, &bf, "good", 5).await;
    c.close_books(10, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_slowloris_senders_are_eventually_closed() {
    let case = "slowloris: one byte every 0.5 s with --idle-timeout 1";
    let bf = BluefloodDouble::start().await;
    let c = spawn(case, &bf.url(), &["--idle-timeout", "1"]);
    let mut s = TcpStream::connect(c.line).await.expect("connect");
    let end = Instant::now() + Duration::from_secs(8);
    let mut closed = false;
    while Instant::now() < end {
        if s.write_all(b"x").await.is_err()
            || closed_by_server(&mut s, Duration::from_millis(500)).await
        {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "{case}: a connection that never completes a line is still open after 8 s"
    );
}

fn nofile_soft_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_make_room_for_new_ones_and_are_counted() {
    let case = "2000 idle connections with --max-connections 1000";
    // The test holds every client socket, the forwarder up to 1000 more.
    let limit = nofile_soft_limit();
    let (total, max) = if limit >= 2600 {
        (2000u64, 1000u64)
    } else {
        let total = limit.saturating_sub(200) / 2 * 2;
        eprintln!("{case}: open-files limit {limit}: scaled down to {total} connections");
        (total, total / 2)
    };
    let bf = BluefloodDouble::start().await;
    let max_s = max.to_string();
    let c = spawn(case, &bf.url(), &["--max-connections", &max_s]);
    let mut conns = Vec::with_capacity(total as usize);
    for i in 0..total {
        let addr = if i % 2 == 0 { c.line } else { c.pickle };
        conns.push(
            TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("{case}: connect #{i}: {e}")),
        );
    }
    // Each connection past the limit closed the one idle longest to make room.
    let s = c
        .wait_status(WAIT, "every connection admitted, the oldest closed", |s| {
            n(&s["connections"]["accepted"]) == total
                && n(&s["connections"]["idle_evicted"]) == total - max
                && n(&s["connections"]["open"]) == max
        })
        .await;
    assert_eq!(n(&s["connections"]["refused"]), 0, "{case}: refused; {s:#}");
    let mets = c.metrics().await;
    assert_eq!(
        metric(&mets, "connections_idle_evicted_total"),
        total - max,
        "{case}: evictions counted in /metrics"
    );
    // The evicted ones were closed by the server.
    let mut closed = 0;
    for s in conns.iter_mut() {
        if closed_by_server(s, Duration::from_millis(2)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, total - max, "{case}: evicted connections closed");
    // With the idle ones still open (the default idle timeout is 300 s), a good sender gets in.
    good_sender_still_served(&c, &bf, "good", 5).await;
    drop(conns);
    c.wait_status(WAIT, "slots freed", |s| n(&s["connections"]["open"]) == 0)
        .await;
    c.close_books(10, WAIT).await;
}
