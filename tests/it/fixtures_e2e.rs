//! Real pickle streams (Graphite's carbon-relay, Python 2 and 3 at every protocol) sent over a
//! socket into the forwarder: every datapoint they hold reaches the Blueflood double with the
//! right name, value and integer-millisecond timestamp.

use crate::harness;
use crate::support;

use std::path::Path;
use std::time::Duration;

use blueflood_forward::config::settings::Protocol;
use harness::{Forwarder, settings};
use support::blueflood::BluefloodDouble;

const WAIT: Duration = Duration::from_secs(30);

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Expected {
    metric_name: String,
    value: f64,
    timestamp: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_stream_is_delivered_exactly() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pickle");
    let mut fixtures: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 13, "fixtures missing: {fixtures:?}");
    for bin in fixtures {
        let stem = bin
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_string();
        let expected: Vec<Expected> =
            std::fs::read_to_string(dir.join(format!("{stem}.expected.jsonl")))
                .expect("expected file")
                .lines()
                .map(|l| serde_json::from_str(l).expect("expected line"))
                .collect();
        let min_ts = expected
            .iter()
            .map(|e| e.timestamp)
            .fold(f64::MAX, f64::min);
        let bf = BluefloodDouble::start().await;
        // The fixtures were recorded in the past: put the server's clock at their time and
        // open the forwarder's window wide.
        bf.set_now_ms(Some((min_ts * 1000.0) as i64 + 60_000));
        let mut cfg = settings(&bf.url());
        cfg.ingest.prefix = String::new();
        cfg.ingest.max_past = Duration::from_secs(20 * 365 * 86400);
        cfg.ingest.max_future = Duration::from_secs(20 * 365 * 86400);
        let f = Forwarder::start(cfg).await;
        support::send_tcp(
            f.addr(Protocol::Pickle),
            &std::fs::read(&bin).expect("read"),
        )
        .await;
        let n = expected.len();
        // Blueflood upserts by (name, time): a point sent twice is stored once.
        let unique: std::collections::HashSet<_> = expected
            .iter()
            .map(|e| (e.metric_name.as_str(), e.timestamp.to_bits()))
            .collect();
        let s = f.settle(n as u64, WAIT).await;
        assert_eq!(
            (s.received_pickle, s.delivered, s.dropped_total()),
            (n as u64, n as u64, 0),
            "{stem}"
        );
        let stored = bf.stored();
        assert_eq!(stored.len(), unique.len(), "{stem}");
        assert_eq!(bf.write_count(), n, "{stem}: every point written");
        for e in &expected {
            let ts_ms = (e.timestamp * 1000.0).round() as i64;
            let found = stored
                .iter()
                .find(|p| p.metric_name == e.metric_name && p.collection_time == ts_ms);
            let p =
                found.unwrap_or_else(|| panic!("{stem}: {} @ {ts_ms} not stored", e.metric_name));
            let tolerance = e.value.abs() * 1e-15;
            assert!(
                (p.metric_value - e.value).abs() <= tolerance,
                "{stem}: {} {} != {}",
                e.metric_name,
                p.metric_value,
                e.value
            );
        }
        f.stop().await;
    }
}
