//! The buffer's bound, full policies and ledger moves.
use super::*;
use crate::config::settings::Protocol;
use crate::events::{PointsDropped, PointsReceived};

fn logs() -> Arc<LogLimits> {
    Arc::new(LogLimits::default())
}

/// What a connection counts before it pushes.
fn received(ledger: &Ledger, count: u64) {
    PointsReceived {
        protocol: Protocol::Pickle,
        count,
    }
    .emit(ledger, &LogLimits::default());
}

fn pt(name: &str) -> Datapoint {
    Datapoint {
        name: name.into(),
        timestamp_ms: 1,
        value: 1.0,
    }
}

#[test]
fn entries_keep_order_across_chunks_and_free_emptied_chunks() {
    let mut e = Entries::default();
    let now = Instant::now();
    for i in 0..(CHUNK * 3 + 5) {
        e.push_back(Entry {
            point: pt(&i.to_string()),
            arrived: now,
        });
    }
    assert_eq!((e.len(), e.chunks.len()), (CHUNK * 3 + 5, 4));
    for i in 0..(CHUNK * 2 + 1) {
        assert_eq!(&*e.pop_front().expect("entry").point.name, i.to_string());
    }
    // Two chunks emptied and freed; what remains is what is held, plus one partial chunk.
    assert_eq!((e.len(), e.chunks.len()), (CHUNK + 4, 2));
    assert_eq!(
        &*e.front().expect("front").point.name,
        (CHUNK * 2 + 1).to_string()
    );
    e.clear();
    assert_eq!(
        (e.len(), e.chunks.len(), e.pop_front().is_none()),
        (0, 0, true)
    );
}

#[test]
fn drop_newest_refuses_what_does_not_fit() {
    let ledger = Arc::new(Ledger::default());
    let cost = pt("a").buffer_cost();
    let buf = Buffer::new(cost * 2, BufferPolicy::DropNewest, ledger.clone(), logs());
    let out = buf.try_push(vec![pt("a"), pt("b"), pt("c")]);
    assert_eq!(
        out,
        PushOutcome {
            accepted: 2,
            dropped: 1,
            reason: Some(DropReason::BufferFull)
        }
    );
    let s = ledger.snapshot();
    assert_eq!(s.buffered_points, 2);
    assert_eq!(s.buffered_bytes, (cost * 2) as u64);
    let mut taken = Vec::new();
    assert_eq!(buf.take(10, &mut taken), 2);
    assert_eq!(&*taken[0].point.name, "a");
    assert_eq!(&*taken[1].point.name, "b");
    let s = ledger.snapshot();
    assert_eq!(
        (s.buffered_points, s.buffered_bytes, s.in_flight_points),
        (0, 0, 2)
    );
}

/// A `block` buffer with room for one point, and a task pushing three into it.
fn push_three_into_room_for_one(
    ledger: &Arc<Ledger>,
) -> (Arc<Buffer>, tokio::task::JoinHandle<PushOutcome>) {
    let cost = pt("a").buffer_cost();
    let buf = Arc::new(Buffer::new(
        cost,
        BufferPolicy::Block,
        ledger.clone(),
        logs(),
    ));
    let pusher = {
        let buf = buf.clone();
        tokio::spawn(async move { buf.push(vec![pt("a"), pt("b"), pt("c")]).await })
    };
    (buf, pusher)
}

#[tokio::test]
async fn block_waits_for_room_then_completes() {
    let ledger = Arc::new(Ledger::default());
    let (buf, pusher) = push_three_into_room_for_one(&ledger);
    let mut taken = Vec::new();
    while taken.len() < 3 {
        buf.take(1, &mut taken);
        tokio::task::yield_now().await;
    }
    let out = pusher.await.expect("pusher");
    assert_eq!(
        out,
        PushOutcome {
            accepted: 3,
            dropped: 0,
            reason: None
        }
    );
    assert_eq!(ledger.snapshot().dropped_total(), 0);
}

#[tokio::test]
async fn points_a_blocked_pusher_holds_are_counted_waiting_for_room() {
    let ledger = Arc::new(Ledger::default());
    received(&ledger, 3);
    let (buf, pusher) = push_three_into_room_for_one(&ledger);
    while ledger.snapshot().waiting_points == 0 {
        tokio::task::yield_now().await;
    }
    let s = ledger.snapshot();
    assert_eq!((s.buffered_points, s.waiting_points), (1, 2));
    assert!(s.balanced(), "{s:?}");
    let mut taken = Vec::new();
    while taken.len() < 3 {
        buf.take(1, &mut taken);
        tokio::task::yield_now().await;
    }
    pusher.await.expect("pusher");
    let s = ledger.snapshot();
    assert_eq!((s.waiting_points, s.in_flight_points), (0, 3));
    assert!(s.balanced(), "{s:?}");
}

#[tokio::test]
async fn close_releases_blocked_pushers_and_reports_what_they_held() {
    let ledger = Arc::new(Ledger::default());
    received(&ledger, 3);
    let (buf, pusher) = push_three_into_room_for_one(&ledger);
    while buf.is_empty() {
        tokio::task::yield_now().await;
    }
    assert_eq!(buf.close_and_drop(), 1);
    let out = pusher.await.expect("pusher");
    assert_eq!(
        out,
        PushOutcome {
            accepted: 1,
            dropped: 2,
            reason: Some(DropReason::ShutdownTimeout)
        }
    );
    // The buffer counted the one it held; the pusher's caller counts its two, which no
    // longer wait.
    assert_eq!(ledger.snapshot().waiting_points, 0);
    PointsDropped {
        peer: std::net::SocketAddr::from(([127, 0, 0, 1], 2003)),
        protocol: Protocol::Pickle,
        reason: out.reason.expect("a reason"),
        count: out.dropped as u64,
        detail: "buffer closed",
    }
    .emit(&ledger, &LogLimits::default());
    let s = ledger.snapshot();
    assert_eq!(s.dropped(DropReason::ShutdownTimeout), 3);
    assert!(s.balanced(), "{s:?}");
}

#[tokio::test]
async fn a_blocked_pusher_shows_its_arrival_and_bytes_until_its_points_are_in() {
    let ledger = Arc::new(Ledger::default());
    received(&ledger, 3);
    let before = Instant::now();
    let (buf, pusher) = push_three_into_room_for_one(&ledger);
    while ledger.snapshot().waiting_points == 0 {
        tokio::task::yield_now().await;
    }
    let held = buf.waiting();
    assert_eq!(held.bytes, 2 * pt("b").buffer_cost() as u64);
    let arrived = held.arrived.expect("an arrival");
    assert!(arrived >= before, "arrived before the push began");
    let mut taken = Vec::new();
    buf.take(1, &mut taken);
    while ledger.snapshot().waiting_points == 2 {
        tokio::task::yield_now().await;
    }
    // One more went in: the other is still waiting, and only its bytes are outside.
    let cost = pt("c").buffer_cost() as u64;
    assert_eq!(
        buf.waiting(),
        Held {
            arrived: Some(arrived),
            bytes: cost
        }
    );
    while taken.len() < 3 {
        buf.take(1, &mut taken);
        tokio::task::yield_now().await;
    }
    pusher.await.expect("pusher");
    assert_eq!(buf.waiting(), Held::default());
    // The points that waited keep the push's arrival, not the time room appeared.
    assert!(taken.iter().all(|e| e.arrived == arrived), "{taken:?}");
}
