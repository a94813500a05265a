//! Throughput of each in-process stage of the forwarding path, in datapoints per second, and of
//! the whole path from pickle frame bytes to a wire-ready (optionally gzipped) request body:
//!
//! * `decode`: `protocol::pickle::decode_frame` alone.
//! * `decode+normalize`: plus `ingest::normalize::Normalizer` into `model::Datapoint`.
//! * `encode`: `forward::blueflood::BodyBuilder` filling 1 MiB bodies from ready Datapoints.
//! * `gzip`: `forward::transport::Prepared::new` on one ~1 MiB body (level 1, level 6, off).
//! * `frame_to_body`: frame bytes → decode → normalize → body builder → `Prepared` (gzip level 1,
//!   and off), as a connection and the flusher do it, minus the buffer and the sockets.
//!
//! Inputs: the recorded carbon-relay stream (`tests/data/pickle/carbon-relay-1.1.10-py3.11.bin`,
//! 1200 points) and generated carbon-relay-style protocol-2 frames of 500 points. Setup is kept
//! cheap because `cargo test --all-targets` runs every bench once.
//! Run: `cargo bench --bench pipeline -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use blueflood_forward::config::settings::{BLUEFLOOD_MAX_BODY_BYTES, Compression, IngestSettings};
use blueflood_forward::forward::blueflood::{BodyBuilder, Offer};
use blueflood_forward::forward::transport::Prepared;
use blueflood_forward::ingest::normalize::Normalizer;
use blueflood_forward::model::Datapoint;
use blueflood_forward::model::now_ms;
use blueflood_forward::protocol::pickle::{PickleLimits, decode_frame};
use blueflood_forward::protocol::{PointError, RawPoint};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

#[path = "../tests/it/support/carbon_pickle.rs"]
mod carbon_pickle;

const POINTS_PER_FRAME: usize = 500;
/// Generated frames for the encode and whole-path benches: enough for one full 1 MiB body.
const GENERATED_FRAMES: usize = 20;
const TTL_SECONDS: u32 = 172_800;

/// The payloads (length prefix stripped) of a recorded stream.
fn fixture_frames(name: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pickle")
        .join(name);
    carbon_pickle::split_frames(&std::fs::read(path).expect("fixture stream is readable"))
}

/// `count` generated 500-point frames with distinct, realistic names.
fn generated_frames(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|f| {
            let names: Vec<String> = (0..POINTS_PER_FRAME)
                .map(|i| {
                    format!(
                        "servers.web{:02}.host{:04}.cpu.metric{}",
                        f % 17,
                        (f * POINTS_PER_FRAME + i) % 5000,
                        i % 7
                    )
                })
                .collect();
            let (ts, value) = (1_700_000_000.0 + f as f64, 0.25 + f as f64);
            let points: Vec<(&str, f64, f64)> =
                names.iter().map(|n| (n.as_str(), ts, value)).collect();
            carbon_pickle::pickle_payload(&points)
        })
        .collect()
}

/// A normaliser that lets every fixture timestamp through (a century either way).
fn normalizer() -> Normalizer {
    let century = Duration::from_secs(100 * 365 * 86_400);
    Normalizer::new(&IngestSettings {
        prefix: String::new(),
        overwrite_collection_timestamp: false,
        max_past: century,
        max_future: century,
        max_frame_bytes: 1 << 20,
        max_line_bytes: 16_384,
        max_name_bytes: 4096,
        max_connections: 10,
        idle_timeout: Duration::from_secs(60),
        partial_frame_bytes: 64 << 20,
    })
}

/// Decodes and normalises `frames` into `out` as a pickle connection does (a fresh `Vec` of
/// decoded points and one clock read per frame); returns how many points were decoded.
fn decode_normalize(
    frames: &[Vec<u8>],
    limits: &PickleLimits,
    normalizer: &Normalizer,
    out: &mut Vec<Datapoint>,
) -> usize {
    let mut n = 0;
    for f in frames {
        let mut raw: Vec<Result<RawPoint<'_>, PointError>> = Vec::new();
        decode_frame(f, limits, &mut raw).expect("frame decodes");
        n += raw.len();
        let now = now_ms();
        out.extend(
            raw.into_iter()
                .filter_map(|item| normalizer.normalize(item.ok()?, now).ok()),
        );
    }
    n
}

fn count_points(frames: &[Vec<u8>]) -> u64 {
    let limits = PickleLimits::default();
    let mut out = Vec::new();
    for f in frames {
        decode_frame(f, &limits, &mut out).expect("frame decodes");
    }
    out.len() as u64
}

/// Ready datapoints, from the generated frames.
fn datapoints(frames: &[Vec<u8>]) -> Vec<Datapoint> {
    let mut out = Vec::new();
    decode_normalize(frames, &PickleLimits::default(), &normalizer(), &mut out);
    out
}

/// Fills 1 MiB bodies from `points` as the flusher does, calling `sealed` on each finished one
/// (the last one possibly partial).
fn build_bodies<'a>(
    points: impl IntoIterator<Item = &'a Datapoint>,
    mut sealed: impl FnMut(Vec<u8>),
) -> usize {
    let mut builder = BodyBuilder::new(BLUEFLOOD_MAX_BODY_BYTES, TTL_SECONDS);
    let mut bodies = 0;
    for p in points {
        loop {
            match builder.offer(p) {
                Offer::Added => break,
                Offer::Full => {
                    let full = std::mem::replace(
                        &mut builder,
                        BodyBuilder::new(BLUEFLOOD_MAX_BODY_BYTES, TTL_SECONDS),
                    );
                    sealed(full.finish());
                    bodies += 1;
                }
                Offer::TooLarge => break,
            }
        }
    }
    if !builder.is_empty() {
        sealed(builder.finish());
        bodies += 1;
    }
    bodies
}

fn decode(c: &mut Criterion) {
    let limits = PickleLimits::default();
    let mut group = c.benchmark_group("decode");
    for (label, frames) in [
        (
            "carbon-relay-1.1.10",
            fixture_frames("carbon-relay-1.1.10-py3.11.bin"),
        ),
        ("generated-proto2-500", generated_frames(1)),
    ] {
        group.throughput(Throughput::Elements(count_points(&frames)));
        group.bench_function(label, |b| {
            let mut out = Vec::with_capacity(1024);
            b.iter(|| {
                for f in &frames {
                    out.clear();
                    decode_frame(black_box(f), &limits, &mut out).expect("frame decodes");
                    black_box(&out);
                }
            })
        });
    }
    group.finish();
}

fn decode_and_normalize(c: &mut Criterion) {
    let limits = PickleLimits::default();
    let normalizer = normalizer();
    let mut group = c.benchmark_group("decode+normalize");
    for (label, frames) in [
        (
            "carbon-relay-1.1.10",
            fixture_frames("carbon-relay-1.1.10-py3.11.bin"),
        ),
        ("generated-proto2-500", generated_frames(1)),
    ] {
        group.throughput(Throughput::Elements(count_points(&frames)));
        group.bench_function(label, |b| {
            let mut out = Vec::with_capacity(2048);
            b.iter(|| {
                out.clear();
                decode_normalize(black_box(&frames), &limits, &normalizer, &mut out);
                black_box(&out);
            })
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let points = datapoints(&generated_frames(GENERATED_FRAMES));
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(points.len() as u64));
    group.bench_function("body-builder-1MiB", |b| {
        b.iter(|| {
            build_bodies(black_box(&points), |body| {
                black_box(body);
            })
        })
    });
    group.finish();
}

fn gzip(c: &mut Criterion) {
    let points = datapoints(&generated_frames(GENERATED_FRAMES));
    // One full body: the first the builder seals.
    let mut builder = BodyBuilder::new(BLUEFLOOD_MAX_BODY_BYTES, TTL_SECONDS);
    for p in &points {
        if builder.offer(p) != Offer::Added {
            break;
        }
    }
    let n = builder.len();
    let json = builder.finish();
    assert!(
        json.len() > BLUEFLOOD_MAX_BODY_BYTES - 1024,
        "the generated points fill a whole body ({} bytes)",
        json.len()
    );
    let mut group = c.benchmark_group("gzip");
    group.throughput(Throughput::Elements(n as u64));
    for (label, compression) in [
        ("level-1-1MiB", Compression::Gzip { level: 1 }),
        ("level-6-1MiB", Compression::Gzip { level: 6 }),
        ("none-1MiB", Compression::None),
    ] {
        group.bench_function(label, |b| {
            b.iter_batched(
                || json.clone(),
                |j| black_box(Prepared::new(j, compression)),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn frame_to_body(c: &mut Criterion) {
    let limits = PickleLimits::default();
    let normalizer = normalizer();
    let mut group = c.benchmark_group("frame_to_body");
    for (input, frames) in [
        (
            "carbon-relay-1.1.10",
            fixture_frames("carbon-relay-1.1.10-py3.11.bin"),
        ),
        ("generated-20x500", generated_frames(GENERATED_FRAMES)),
    ] {
        group.throughput(Throughput::Elements(count_points(&frames)));
        for (label, compression) in [
            ("gzip-1", Compression::Gzip { level: 1 }),
            ("none", Compression::None),
        ] {
            group.bench_function(format!("{input}/{label}"), |b| {
                let mut points = Vec::with_capacity(16_384);
                b.iter(|| {
                    points.clear();
                    decode_normalize(black_box(&frames), &limits, &normalizer, &mut points);
                    build_bodies(&points, |json| {
                        black_box(Prepared::new(json, compression));
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    decode,
    decode_and_normalize,
    encode,
    gzip,
    frame_to_body
);
criterion_main!(benches);
