//! Throughput of the protocol decoders (datapoints per second), with serde-pickle on the same
//! carbon-relay frames for comparison. Run: `cargo bench --bench protocol`.

use std::hint::black_box;
use std::path::Path;

use blueflood_forward::protocol::line::parse_line;
use blueflood_forward::protocol::pickle::{PickleLimits, decode_frame};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "../tests/it/support/carbon_pickle.rs"]
mod carbon_pickle;

fn frames(name: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/pickle")
        .join(name);
    carbon_pickle::split_frames(&std::fs::read(path).expect("fixture"))
}

fn count_points(frames: &[Vec<u8>]) -> u64 {
    let limits = PickleLimits::default();
    let mut out = Vec::new();
    for f in frames {
        decode_frame(f, &limits, &mut out).expect("fixture decodes");
    }
    out.len() as u64
}

fn bench_ours(c: &mut Criterion, label: &str, frames: &[Vec<u8>]) {
    let limits = PickleLimits::default();
    let mut group = c.benchmark_group("pickle");
    group.throughput(Throughput::Elements(count_points(frames)));
    group.bench_function(label, |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            for f in frames {
                out.clear();
                decode_frame(black_box(f), &limits, &mut out).expect("decodes");
                black_box(&out);
            }
        })
    });
    group.finish();
}

fn pickle(c: &mut Criterion) {
    let relay = frames("carbon-relay-1.1.10-py3.11.bin");
    bench_ours(c, "carbon-relay-1.1.10", &relay);
    // Frame 1 of the generated stream is 500 relay-style points pickled by CPython, protocol 2.
    let gen2 = vec![frames("py3-generated-proto2.bin").swap_remove(1)];
    bench_ours(c, "generated-proto2-500", &gen2);
    bench_ours(c, "py2-proto0", &frames("py2-proto0.bin"));
    bench_ours(c, "py3-proto0", &frames("py3-proto0.bin"));
    bench_ours(c, "py3-proto4", &frames("py3-proto4.bin"));

    let mut group = c.benchmark_group("serde-pickle");
    group.throughput(Throughput::Elements(count_points(&relay)));
    group.bench_function("carbon-relay-1.1.10/typed", |b| {
        b.iter(|| {
            for f in &relay {
                let v: Vec<(String, (f64, f64))> =
                    serde_pickle::from_slice(black_box(f), serde_pickle::DeOptions::new())
                        .expect("decodes");
                black_box(v);
            }
        })
    });
    group.bench_function("carbon-relay-1.1.10/value", |b| {
        b.iter(|| {
            for f in &relay {
                let v =
                    serde_pickle::value_from_slice(black_box(f), serde_pickle::DeOptions::new())
                        .expect("decodes");
                black_box(v);
            }
        })
    });
    group.finish();
}

fn line(c: &mut Criterion) {
    let lines: Vec<String> = (0..500)
        .map(|i| {
            format!(
                "servers.web{:02}.cpu.user.{i} {}.{} {}\r",
                i % 17,
                i * 3,
                i % 10,
                1_700_000_000 + i
            )
        })
        .collect();
    let mut group = c.benchmark_group("line");
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("500-typical-lines", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(parse_line(black_box(l.as_bytes()), 4096).expect("parses"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, pickle, line);
criterion_main!(benches);
