//! Unit tests of the store when its files are taken away or cannot be written: a segment
//! deleted while running is given up and reading goes on; a directory that cannot be written
//! is still replayed and left as it was; a segment that cannot be created or written is an
//! error naming it. (A segment unreadable at open needs a non-root process:
//! `tests/it/spool_crash.rs` covers it.)

use std::io;

use super::*;
use crate::spool::record;
use crate::spool::segment::{MAGIC_LEN, SegmentWriter};

#[test]
fn a_deleted_segment_is_lost_and_reading_goes_on_with_the_next() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let (mut s, _) = open(tmp.path(), opts(400, 1 << 30));
    for i in 0..30 {
        append(&mut s, i);
    }
    let segs = seg_files(tmp.path());
    assert!(segs.len() >= 4, "{segs:?}");
    let first = next(&mut s).expect("first record");
    assert_eq!(batches(std::slice::from_ref(&first)), vec![0]);
    fs::remove_file(&segs[1]).expect("delete the segment");
    let mut got = vec![first];
    let mut lost = 0;
    loop {
        match s.read().expect("read") {
            ReadOutcome::Record(r) => got.push(r),
            ReadOutcome::Lost { lost_points, error } => {
                assert!(
                    error.to_string().contains(&segs[1].display().to_string()),
                    "{error}"
                );
                lost += lost_points;
            }
            ReadOutcome::Empty => break,
            other => panic!("{other:?}"),
        }
    }
    let read = batches(&got);
    let gone: Vec<u64> = (0..30).filter(|i| !read.contains(i)).collect();
    assert!(!gone.is_empty());
    assert_eq!(
        lost,
        gone.iter().map(|&i| batch(i).len() as u64).sum::<u64>()
    );
    assert!(read.windows(2).all(|w| w[0] < w[1]), "{read:?}");
    assert_eq!(read.last(), Some(&29), "the segments after it are read");
    assert_eq!(s.stats().unread_points, 0);
    for r in &got {
        s.ack(r.id).expect("ack");
    }
    s.sync().expect("sync");
    assert_eq!(s.stats().bytes, disk_bytes(tmp.path()));
    drop(s);
    let (mut s, rec) = open(tmp.path(), opts(400, 1 << 30));
    assert_eq!(rec.records, 0, "{rec:?}");
    assert!(read_all(&mut s).is_empty());
}

#[test]
fn a_deleted_active_segment_is_sealed_and_new_records_go_to_a_new_file() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let (mut s, _) = open(tmp.path(), big());
    append(&mut s, 0);
    append(&mut s, 1);
    let seg = seg_files(tmp.path())[0].clone();
    fs::remove_file(&seg).expect("delete the segment");
    match s.read().expect("read") {
        ReadOutcome::Lost { lost_points, .. } => assert_eq!(lost_points, points_of(0..2)),
        other => panic!("{other:?}"),
    }
    append(&mut s, 2);
    assert_eq!(seg_files(tmp.path()).len(), 1, "a new segment file");
    assert_ne!(seg_files(tmp.path())[0], seg);
    assert_eq!(batches(&read_all(&mut s)), vec![2]);
    assert_eq!(s.stats().bytes, disk_bytes(tmp.path()));
}

/// Makes the checkpoint's temporary name a directory: creating a file there fails, as it
/// would in a directory this process may not write (which root cannot make for itself).
fn block_writes(dir: &Path) -> PathBuf {
    let blocker = dir.join("ack.tmp");
    fs::create_dir(&blocker).expect("make the blocker");
    blocker
}

#[test]
fn a_directory_that_cannot_be_written_is_replayed_and_left_as_it_was() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let one = record::encoded_len(&batch(0)) as u64;
    let o = || opts(MAGIC_LEN + 2 * one, 1 << 30);
    {
        let (mut s, _) = open(tmp.path(), o());
        for i in 0..6 {
            append(&mut s, i);
        }
        s.sync().expect("sync");
    }
    // A torn tail that a writable open would cut off.
    let last = seg_files(tmp.path()).pop().expect("a segment");
    let torn_len = fs::metadata(&last).expect("segment metadata").len() - 3;
    fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open the last segment")
        .set_len(torn_len)
        .expect("tear its tail");
    let blocker = block_writes(tmp.path());
    let files = seg_files(tmp.path());

    let (mut s, rec) = open(tmp.path(), o());
    assert!(rec.read_only, "{rec:?}");
    assert_eq!(rec.corrupt_records, 1);
    assert!(!s.writable() && !s.stats().writable);
    let recs = read_all(&mut s);
    assert_eq!(batches(&recs), vec![0, 1, 2, 3, 4]);
    for r in &recs {
        s.ack(r.id).expect("ack");
    }
    s.sync().expect("sync");
    assert!(matches!(
        s.append(&batch(9), 9),
        Err(StoreError::ReadOnly { .. })
    ));
    assert_eq!(seg_files(tmp.path()), files, "nothing deleted or created");
    assert_eq!(
        fs::metadata(&last).expect("segment metadata").len(),
        torn_len,
        "nothing cut"
    );
    assert!(!tmp.path().join("ack").exists(), "no checkpoint written");

    // Writable again: the next append probes, and the store is used as usual.
    fs::remove_dir(&blocker).expect("remove the blocker");
    append(&mut s, 7);
    assert!(s.writable());
    assert_eq!(batches(&read_all(&mut s)), vec![7]);
    drop(s);
    // Nothing was acknowledged on disk: the next open replays everything again.
    let (mut s, rec) = open(tmp.path(), o());
    assert!(!rec.read_only);
    assert_eq!(batches(&read_all(&mut s)), vec![0, 1, 2, 3, 4, 7]);
}

#[test]
fn failing_segment_creation_is_an_io_error_naming_the_path() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let one = record::encoded_len(&batch(0)) as u64;
    // Each record fills a segment.
    let (mut s, _) = open(tmp.path(), opts(MAGIC_LEN + one, 1 << 30));
    append(&mut s, 0);
    let blocker = tmp.path().join("00000000000000000001.seg");
    fs::create_dir(&blocker).expect("create dir");
    match s.append(&batch(1), 1_001) {
        Err(StoreError::Io { op, path, .. }) => {
            assert_eq!(op, "create segment");
            assert_eq!(path, blocker);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(batches(&read_all(&mut s)), vec![0]);
    fs::remove_dir(&blocker).expect("remove dir");
    append(&mut s, 3);
    assert_eq!(batches(&read_all(&mut s)), vec![3]);
    drop(s);
    let (mut s, rec) = open(tmp.path(), opts(MAGIC_LEN + one, 1 << 30));
    assert_eq!(rec.corrupt_records, 0);
    assert_eq!(batches(&read_all(&mut s)), vec![0, 3]);
}

#[test]
fn segment_writer_reports_a_failed_write_and_keeps_its_length() {
    let path = PathBuf::from("/dev/full");
    let file = OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open segment");
    let mut w = SegmentWriter {
        file,
        path: path.clone(),
        len: MAGIC_LEN,
        dirty: false,
        broken: false,
    };
    match w.append(b"a record") {
        Err(StoreError::Io {
            op,
            path: p,
            source,
        }) => {
            assert_eq!(op, "write segment");
            assert_eq!(p, path);
            assert_eq!(source.kind(), io::ErrorKind::StorageFull);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w.len, MAGIC_LEN);
    assert!(!w.dirty);
    // A device cannot be truncated, so the segment could not be cut back: it must be sealed.
    assert!(w.broken);
}
