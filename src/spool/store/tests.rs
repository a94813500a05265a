//! Unit tests of `store`, a module per role (`append`, `read`, `evict`, `recovery`, and
//! `faults` for files taken away or unwritable); here the helpers they share.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::*;
use crate::model::Datapoint;

mod append;
mod evict;
mod faults;
mod read;
mod recovery;

const MIB: usize = 1 << 20;

fn opts(segment_bytes: u64, max_bytes: u64) -> StoreOptions {
    StoreOptions {
        max_bytes,
        segment_bytes,
        max_record_bytes: MIB,
        full_policy: FullPolicy::DropOldest,
        sync_every_append: false,
    }
}

fn big() -> StoreOptions {
    opts(1 << 30, 1 << 40)
}

/// Batch `i`: `1 + i % 3` points with names and values derived from `i`.
fn batch(i: u64) -> Vec<Datapoint> {
    (0..1 + i % 3)
        .map(|j| Datapoint {
            name: format!("servers.host{i}.cpu{j}").into(),
            timestamp_ms: (i * 10 + j) as i64 * 1000,
            value: i as f64 + j as f64 / 4.0,
        })
        .collect()
}

fn open(dir: &Path, o: StoreOptions) -> (Store, Recovery) {
    Store::open(dir, o).unwrap()
}

fn append(store: &mut Store, i: u64) -> Appended {
    store.append(&batch(i), 1_000 + i).unwrap()
}

fn next(store: &mut Store) -> Option<ReadRecord> {
    match store.read().unwrap() {
        ReadOutcome::Record(r) => Some(r),
        ReadOutcome::Empty => None,
        ReadOutcome::Corrupt { lost_points, bytes } => {
            panic!("unexpected corruption: {lost_points} points, {bytes} bytes")
        }
        ReadOutcome::Lost { lost_points, error } => {
            panic!("unexpected loss of {lost_points} points: {error}")
        }
    }
}

fn read_all(store: &mut Store) -> Vec<ReadRecord> {
    std::iter::from_fn(|| next(store)).collect()
}

/// The batch numbers of records, recovered from their `written_ms`, after checking the points.
fn batches(recs: &[ReadRecord]) -> Vec<u64> {
    recs.iter()
        .map(|r| {
            let i = r.written_ms - 1_000;
            assert_eq!(r.points, batch(i), "record {:?}", r.id);
            i
        })
        .collect()
}

fn seg_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg") && p.is_file())
        .collect();
    v.sort();
    v
}

fn disk_bytes(dir: &Path) -> u64 {
    seg_files(dir)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

fn flip_byte(path: &Path, at: u64) {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    let mut b = [0u8];
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x10]).unwrap();
}

fn points_of(range: std::ops::Range<u64>) -> u64 {
    range.map(|i| batch(i).len() as u64).sum()
}
