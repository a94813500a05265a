//! Unit tests of `store`.

use std::io::{Read, Seek, SeekFrom, Write};

use super::super::checkpoint::encode_checkpoint;
use super::*;

mod faults;

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

#[test]
fn round_trip_across_many_segments_keeps_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, rec) = open(tmp.path(), opts(300, 1 << 30));
    assert_eq!(rec.segments, 0);
    assert!(rec.checkpoint_missing_or_corrupt);
    for i in 0..60 {
        assert_eq!(
            append(&mut s, i),
            Appended::Stored {
                evicted_segments: 0,
                evicted_points: 0
            }
        );
    }
    let st = s.stats();
    assert!(st.segments > 5, "{st:?}");
    assert_eq!(st.segments, seg_files(tmp.path()).len());
    assert_eq!(st.bytes, disk_bytes(tmp.path()));
    assert_eq!(st.unread_points, points_of(0..60));
    // No record here is bigger than a segment, so every segment stays within segment_bytes.
    for p in seg_files(tmp.path()) {
        assert!(fs::metadata(&p).unwrap().len() <= 300, "{p:?}");
    }
    let recs = read_all(&mut s);
    assert_eq!(batches(&recs), (0..60).collect::<Vec<_>>());
    assert!(recs.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(s.stats().unread_points, 0);
    assert_eq!(s.stats().unacked_records, 60);
    for r in &recs {
        s.ack(r.id).unwrap();
    }
    // Only the active segment is left: sealed segments go once fully acked.
    assert_eq!(s.stats().segments, 1);
    assert_eq!(seg_files(tmp.path()).len(), 1);
    assert_eq!(s.stats().unacked_records, 0);
    assert_eq!(s.stats().oldest_written_ms, None);
}

#[test]
fn ack_deletes_a_segment_exactly_when_its_last_record_is_acked() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, _) = open(tmp.path(), opts(300, 1 << 30));
    for i in 0..20 {
        append(&mut s, i);
    }
    let first = seg_files(tmp.path())[0].clone();
    let recs = read_all(&mut s);
    let in_first: Vec<_> = recs.iter().filter(|r| r.id.segment == 0).collect();
    assert!(in_first.len() > 1);
    for r in &in_first[..in_first.len() - 1] {
        s.ack(r.id).unwrap();
        assert!(first.exists());
    }
    s.ack(in_first[in_first.len() - 1].id).unwrap();
    assert!(!first.exists());
    assert_eq!(s.stats().segments, seg_files(tmp.path()).len());
    assert_eq!(s.stats().bytes, disk_bytes(tmp.path()));
}

#[test]
fn reopen_replays_exactly_the_unacked_records() {
    let tmp = tempfile::tempdir().unwrap();
    let replay_from;
    {
        let (mut s, _) = open(tmp.path(), opts(300, 1 << 30));
        for i in 0..30 {
            append(&mut s, i);
        }
        let recs = read_all(&mut s);
        for r in &recs[..17] {
            s.ack(r.id).unwrap();
        }
        s.sync().unwrap();
        // Acked after the last sync: replayed (duplicates, never losses).
        s.ack(recs[17].id).unwrap();
        replay_from = if recs[18].id.segment == recs[17].id.segment {
            17
        } else {
            18
        };
    }
    // Record 17 comes back unless acking it emptied (and so deleted) its segment.
    let from = replay_from;
    let (mut s, rec) = open(tmp.path(), opts(300, 1 << 30));
    assert!(!rec.checkpoint_missing_or_corrupt);
    assert_eq!(rec.records, 30 - from);
    assert_eq!(rec.points, points_of(from..30));
    assert_eq!(rec.corrupt_records, 0);
    assert_eq!(rec.oldest_written_ms, Some(1_000 + from));
    assert_eq!(rec.bytes, disk_bytes(tmp.path()));
    assert_eq!(rec.segments, seg_files(tmp.path()).len());
    assert_eq!(s.stats().unread_points, points_of(from..30));
    assert_eq!(s.stats().oldest_written_ms, Some(1_000 + from));
    let recs = read_all(&mut s);
    assert_eq!(batches(&recs), (from..30).collect::<Vec<_>>());
}

#[test]
fn appends_after_reopen_go_to_a_new_segment() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut s, _) = open(tmp.path(), big());
        append(&mut s, 0);
    }
    let before = fs::read(&seg_files(tmp.path())[0]).unwrap();
    let (mut s, rec) = open(tmp.path(), big());
    assert_eq!(rec.records, 1);
    append(&mut s, 1);
    let files = seg_files(tmp.path());
    assert_eq!(files.len(), 2);
    assert_eq!(fs::read(&files[0]).unwrap(), before);
    assert!(files[1].ends_with("00000000000000000001.seg"));
    assert_eq!(batches(&read_all(&mut s)), vec![0, 1]);
}

#[test]
fn segment_numbers_are_never_reused_below_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut s, _) = open(tmp.path(), opts(100, 1 << 30));
        for i in 0..5 {
            append(&mut s, i);
        }
        for r in read_all(&mut s) {
            s.ack(r.id).unwrap();
        }
        s.sync().unwrap();
    }
    // Everything acked: the last segment goes too, and only the checkpoint remembers numbers.
    let (_, rec) = open(tmp.path(), opts(100, 1 << 30));
    assert_eq!(rec.records, 0);
    assert!(seg_files(tmp.path()).is_empty());
    {
        let (mut s, rec) = open(tmp.path(), opts(100, 1 << 30));
        assert!(!rec.checkpoint_missing_or_corrupt);
        append(&mut s, 7);
    }
    let (mut s, rec) = open(tmp.path(), opts(100, 1 << 30));
    assert_eq!(rec.records, 1);
    assert_eq!(batches(&read_all(&mut s)), vec![7]);
}

#[test]
fn torn_tail_at_every_offset_of_the_last_record() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let ids: Vec<RecordId>;
    {
        let (mut s, _) = open(&src, big());
        for i in 0..3 {
            append(&mut s, i);
        }
        ids = read_all(&mut s).iter().map(|r| r.id).collect();
    }
    let seg_name = "00000000000000000000.seg";
    let full = fs::read(src.join(seg_name)).unwrap();
    let last = ids[2].offset as usize;
    for cut in last..full.len() {
        let dir = tmp.path().join(format!("cut{cut}"));
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join(seg_name), &full[..cut]).unwrap();
        {
            let (mut s, rec) = open(&dir, big());
            assert_eq!(rec.records, 2, "cut at {cut}");
            let torn = (cut > last) as u64;
            assert_eq!(rec.corrupt_records, torn, "cut at {cut}");
            assert_eq!(rec.corrupt_bytes, (cut - last) as u64, "cut at {cut}");
            assert_eq!(fs::metadata(dir.join(seg_name)).unwrap().len(), last as u64);
            assert_eq!(batches(&read_all(&mut s)), vec![0, 1]);
            append(&mut s, 9);
        }
        let (mut s, rec) = open(&dir, big());
        assert_eq!(rec.corrupt_records, 0, "cut at {cut}");
        assert_eq!(batches(&read_all(&mut s)), vec![0, 1, 9]);
    }
}

#[test]
fn bit_flip_found_at_open_cuts_the_rest_of_that_segment_only() {
    let tmp = tempfile::tempdir().unwrap();
    let ids: Vec<RecordId>;
    {
        let (mut s, _) = open(tmp.path(), opts(400, 1 << 30));
        for i in 0..30 {
            append(&mut s, i);
        }
        ids = read_all(&mut s).iter().map(|r| r.id).collect();
    }
    let in_first = ids.iter().filter(|id| id.segment == 0).count();
    assert!(in_first >= 4);
    let first = seg_files(tmp.path())[0].clone();
    let first_len = fs::metadata(&first).unwrap().len();
    // Inside the third record's payload.
    flip_byte(&first, ids[2].offset + 12);
    let (mut s, rec) = open(tmp.path(), opts(400, 1 << 30));
    assert_eq!(rec.corrupt_records, 1);
    assert_eq!(rec.corrupt_bytes, first_len - ids[2].offset);
    assert_eq!(fs::metadata(&first).unwrap().len(), ids[2].offset);
    let expected: Vec<u64> = (0..2).chain(in_first as u64..30).collect();
    assert_eq!(rec.records, expected.len() as u64);
    assert_eq!(
        rec.points,
        expected.iter().map(|&i| batch(i).len() as u64).sum::<u64>()
    );
    assert_eq!(batches(&read_all(&mut s)), expected);
}

#[test]
fn corrupt_or_missing_checkpoint_replays_everything() {
    for damage in ["flip", "short", "missing"] {
        let tmp = tempfile::tempdir().unwrap();
        {
            let (mut s, _) = open(tmp.path(), big());
            for i in 0..10 {
                append(&mut s, i);
            }
            let recs = read_all(&mut s);
            s.ack(recs[0].id).unwrap();
            s.ack(recs[1].id).unwrap();
            s.sync().unwrap();
        }
        let ack = tmp.path().join("ack");
        match damage {
            "flip" => flip_byte(&ack, 3),
            "short" => fs::write(&ack, [0u8; 19]).unwrap(),
            _ => fs::remove_file(&ack).unwrap(),
        }
        let (mut s, rec) = open(tmp.path(), big());
        assert!(rec.checkpoint_missing_or_corrupt, "{damage}");
        assert_eq!(rec.records, 10, "{damage}");
        assert_eq!(batches(&read_all(&mut s)), (0..10).collect::<Vec<_>>());
    }
}

#[test]
fn checkpoint_off_a_record_boundary_replays_its_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let ids: Vec<RecordId>;
    {
        let (mut s, _) = open(tmp.path(), big());
        for i in 0..4 {
            append(&mut s, i);
        }
        ids = read_all(&mut s).iter().map(|r| r.id).collect();
    }
    let ack = tmp.path().join("ack");
    // On a boundary: honoured.
    fs::write(&ack, encode_checkpoint(ids[2])).unwrap();
    {
        let (mut s, rec) = open(tmp.path(), big());
        assert!(!rec.checkpoint_missing_or_corrupt);
        assert_eq!(batches(&read_all(&mut s)), vec![2, 3]);
    }
    for offset in [ids[2].offset + 1, 3] {
        let c = RecordId { segment: 0, offset };
        fs::write(&ack, encode_checkpoint(c)).unwrap();
        let (mut s, rec) = open(tmp.path(), big());
        assert!(rec.checkpoint_missing_or_corrupt, "{offset}");
        assert_eq!(batches(&read_all(&mut s)), vec![0, 1, 2, 3]);
    }
}

#[test]
fn bad_magic_segment_is_deleted_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut s, _) = open(tmp.path(), opts(200, 1 << 30));
        for i in 0..12 {
            append(&mut s, i);
        }
    }
    let files = seg_files(tmp.path());
    assert!(files.len() >= 3);
    let bad_len = fs::metadata(&files[0]).unwrap().len();
    flip_byte(&files[0], 0);
    // A crash right after creating a segment leaves it without (all of) its magic.
    fs::write(&files[2], b"BFSP").unwrap();
    let (mut s, rec) = open(tmp.path(), opts(200, 1 << 30));
    assert_eq!(rec.corrupt_records, 2);
    assert_eq!(rec.corrupt_bytes, bad_len + 4);
    assert!(!files[0].exists());
    assert!(!files[2].exists());
    let got = batches(&read_all(&mut s));
    assert_eq!(got.len() as u64, rec.records);
    assert!(!got.contains(&0));
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*got.last().unwrap(), 11);
}

#[test]
fn drop_oldest_stays_within_max_bytes_and_counts_evictions() {
    let tmp = tempfile::tempdir().unwrap();
    let max_bytes = 1_000;
    let (mut s, _) = open(tmp.path(), opts(250, max_bytes));
    let mut appended = 0;
    let mut evicted = 0;
    let mut read = 0;
    let mut evictions = 0;
    let mut held: Option<RecordId> = None;
    for i in 0..200 {
        appended += batch(i).len() as u64;
        match append(&mut s, i) {
            Appended::Stored {
                evicted_segments,
                evicted_points,
            } => {
                evictions += evicted_segments;
                evicted += evicted_points;
            }
            Appended::Full => panic!("DropOldest never refuses"),
        }
        assert!(s.stats().bytes <= max_bytes);
        assert_eq!(s.stats().bytes, disk_bytes(tmp.path()));
        // Now and then the consumer reads one record and holds it unacked.
        if i % 7 == 0 {
            if let Some(id) = held.take() {
                // Its segment may have been evicted meanwhile: then the ack is a no-op.
                s.ack(id).unwrap();
            }
            if let Some(r) = next(&mut s) {
                read += r.points.len() as u64;
                held = Some(r.id);
            }
        }
    }
    assert!(evictions > 10);
    read += read_all(&mut s)
        .iter()
        .map(|r| r.points.len() as u64)
        .sum::<u64>();
    assert_eq!(appended, read + evicted);
}

#[test]
fn drop_oldest_evicts_a_lone_active_segment_after_sealing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let one = (MAGIC.len() + record::encoded_len(&batch(2))) as u64;
    // Room for one record only; segments could hold many.
    let (mut s, _) = open(tmp.path(), opts(1 << 20, one + 10));
    append(&mut s, 2);
    assert_eq!(
        append(&mut s, 5),
        Appended::Stored {
            evicted_segments: 1,
            evicted_points: 3
        }
    );
    assert_eq!(seg_files(tmp.path()).len(), 1);
    assert_eq!(batches(&read_all(&mut s)), vec![5]);
}

#[test]
fn evicted_in_flight_records_are_dropped_and_their_ack_is_a_no_op() {
    let tmp = tempfile::tempdir().unwrap();
    let one = (MAGIC.len() + record::encoded_len(&batch(0))) as u64;
    let (mut s, _) = open(tmp.path(), opts(1 << 20, one + 10));
    append(&mut s, 0);
    let r = next(&mut s).unwrap();
    assert_eq!(s.stats().unacked_records, 1);
    assert_eq!(
        append(&mut s, 3),
        Appended::Stored {
            evicted_segments: 1,
            evicted_points: 0
        }
    );
    assert_eq!(s.stats().unacked_records, 0);
    s.ack(r.id).unwrap();
    assert_eq!(batches(&read_all(&mut s)), vec![3]);
}

#[test]
fn block_returns_full_and_writes_nothing() {
    // Several segments, then one segment that never reaches segment_bytes.
    for segment_bytes in [250, 1 << 20] {
        let tmp = tempfile::tempdir().unwrap();
        let mut o = opts(segment_bytes, 1_000);
        o.full_policy = FullPolicy::Block;
        let (mut s, _) = open(tmp.path(), o);
        let mut stored = 0;
        while let Appended::Stored { .. } = append(&mut s, stored) {
            stored += 1;
            assert!(stored < 100);
        }
        assert!(stored > 3);
        let stats = s.stats();
        let contents = |dir: &Path| -> Vec<(PathBuf, Vec<u8>)> {
            seg_files(dir)
                .into_iter()
                .map(|p| (p.clone(), fs::read(&p).unwrap()))
                .collect()
        };
        let before = contents(tmp.path());
        assert_eq!(append(&mut s, stored), Appended::Full);
        assert_eq!(s.stats(), stats);
        assert_eq!(contents(tmp.path()), before);
        // Once everything is delivered there is room again, even the space of an active
        // segment that would otherwise never rotate.
        for r in read_all(&mut s) {
            s.ack(r.id).unwrap();
        }
        if segment_bytes == 1 << 20 {
            // The emptied segment was dropped whole: the spool holds as much as at the start.
            for i in 0..stored {
                assert!(matches!(append(&mut s, i), Appended::Stored { .. }), "{i}");
            }
            assert_eq!(batches(&read_all(&mut s)), (0..stored).collect::<Vec<_>>());
        } else {
            assert!(matches!(append(&mut s, stored), Appended::Stored { .. }));
            assert_eq!(batches(&read_all(&mut s)), vec![stored]);
        }
    }
}

#[test]
fn too_large_records_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = opts(1 << 20, 1 << 20);
    o.max_record_bytes = 100;
    let (mut s, _) = open(tmp.path(), o.clone());
    let long = vec![Datapoint {
        name: "x".repeat(100).into(),
        timestamp_ms: 0,
        value: 0.0,
    }];
    assert!(matches!(
        s.append(&long, 0),
        Err(StoreError::TooLarge { record_bytes, .. }) if record_bytes == record::encoded_len(&long) as u64
    ));
    // Bigger than the whole spool.
    o.max_record_bytes = MIB;
    o.max_bytes = 100;
    let tmp2 = tempfile::tempdir().unwrap();
    let (mut s2, _) = open(tmp2.path(), o);
    assert!(matches!(
        s2.append(&long, 0),
        Err(StoreError::TooLarge { .. })
    ));
    assert!(seg_files(tmp.path()).is_empty());
    assert!(seg_files(tmp2.path()).is_empty());
    // A record bigger than segment_bytes goes alone into its own segment.
    let tmp3 = tempfile::tempdir().unwrap();
    let (mut s3, _) = open(tmp3.path(), opts(50, 1 << 20));
    s3.append(&long, 0).unwrap();
    s3.append(&long, 0).unwrap();
    assert_eq!(s3.stats().segments, 2);
}

#[test]
fn record_over_max_record_bytes_on_disk_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut s, _) = open(tmp.path(), big());
        append(&mut s, 0);
        append(&mut s, 2);
    }
    let mut o = big();
    // batch(0) fits, batch(2) (three points) does not.
    o.max_record_bytes = record::encoded_len(&batch(0)) - HEADER_BYTES;
    let (mut s, rec) = open(tmp.path(), o);
    assert_eq!(rec.records, 1);
    assert_eq!(rec.corrupt_records, 1);
    assert_eq!(batches(&read_all(&mut s)), vec![0]);
}

#[test]
fn second_open_of_a_locked_dir_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _) = open(tmp.path(), big());
    assert!(matches!(
        Store::open(tmp.path(), big()),
        Err(StoreError::Locked { path }) if path == tmp.path()
    ));
    drop(s);
    Store::open(tmp.path(), big()).unwrap();
}

#[test]
fn failing_segment_creation_is_an_io_error_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let one = record::encoded_len(&batch(0)) as u64;
    // Each record fills a segment.
    let (mut s, _) = open(tmp.path(), opts(MAGIC_LEN + one, 1 << 30));
    append(&mut s, 0);
    let blocker = tmp.path().join("00000000000000000001.seg");
    fs::create_dir(&blocker).unwrap();
    match s.append(&batch(1), 1_001) {
        Err(StoreError::Io { op, path, .. }) => {
            assert_eq!(op, "create segment");
            assert_eq!(path, blocker);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(batches(&read_all(&mut s)), vec![0]);
    fs::remove_dir(&blocker).unwrap();
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
    let file = OpenOptions::new().append(true).open(&path).unwrap();
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

#[test]
fn bit_flip_found_by_read_cuts_and_counts_the_lost_points() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("ids");
    let ids: Vec<RecordId>;
    {
        let (mut s, _) = open(&src, opts(400, 1 << 30));
        for i in 0..30 {
            append(&mut s, i);
        }
        ids = read_all(&mut s).iter().map(|r| r.id).collect();
    }
    let in_first = ids.iter().filter(|id| id.segment == 0).count() as u64;
    assert!(in_first >= 4);

    let dir = tmp.path().join("spool");
    let (mut s, _) = open(&dir, opts(400, 1 << 30));
    for i in 0..30 {
        append(&mut s, i);
    }
    let first = seg_files(&dir)[0].clone();
    let first_len = fs::metadata(&first).unwrap().len();
    flip_byte(&first, ids[2].offset + 12);
    assert_eq!(
        batches(&[next(&mut s).unwrap(), next(&mut s).unwrap()]),
        vec![0, 1]
    );
    let unread_before = s.stats().unread_points;
    match s.read().unwrap() {
        ReadOutcome::Corrupt { lost_points, bytes } => {
            assert_eq!(lost_points, points_of(2..in_first));
            assert_eq!(bytes, first_len - ids[2].offset);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.stats().unread_points,
        unread_before - points_of(2..in_first)
    );
    assert_eq!(fs::metadata(&first).unwrap().len(), ids[2].offset);
    assert_eq!(s.stats().bytes, disk_bytes(&dir));
    let rest = read_all(&mut s);
    assert_eq!(batches(&rest), (in_first..30).collect::<Vec<_>>());
}

#[test]
fn bit_flip_in_the_active_segment_cuts_it_and_appends_continue() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, _) = open(tmp.path(), big());
    for i in 0..4 {
        append(&mut s, i);
    }
    let seg = seg_files(tmp.path())[0].clone();
    let second = MAGIC_LEN + record::encoded_len(&batch(0)) as u64;
    let len = fs::metadata(&seg).unwrap().len();
    // Damage the length field of the second record: it now claims 256 MiB more.
    flip_byte(&seg, second + 3);
    let r0 = next(&mut s).unwrap();
    assert_eq!(batches(std::slice::from_ref(&r0)), vec![0]);
    match s.read().unwrap() {
        ReadOutcome::Corrupt { lost_points, bytes } => {
            assert_eq!(lost_points, points_of(1..4));
            assert_eq!(bytes, len - second);
        }
        other => panic!("{other:?}"),
    }
    assert!(next(&mut s).is_none());
    append(&mut s, 8);
    assert_eq!(batches(&read_all(&mut s)), vec![8]);
    s.ack(r0.id).unwrap();
    drop(s);
    let (mut s, rec) = open(tmp.path(), big());
    assert_eq!(rec.corrupt_records, 0);
    assert_eq!(batches(&read_all(&mut s)), vec![0, 8]);
}

#[test]
fn stats_follow_reads_and_acks() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, _) = open(tmp.path(), big());
    assert_eq!(
        s.stats(),
        StoreStats {
            writable: true,
            ..StoreStats::default()
        }
    );
    for i in 0..3 {
        append(&mut s, i);
    }
    let st = s.stats();
    assert_eq!(st.unread_points, points_of(0..3));
    assert_eq!(st.unacked_records, 0);
    assert_eq!(st.oldest_written_ms, Some(1_000));
    assert_eq!(st.segments, 1);
    let r = next(&mut s).unwrap();
    assert_eq!(s.stats().unread_points, points_of(1..3));
    assert_eq!(s.stats().unacked_records, 1);
    assert_eq!(s.stats().oldest_written_ms, Some(1_000));
    s.ack(r.id).unwrap();
    assert_eq!(s.stats().unacked_records, 0);
    // A lower bound: the next unread record counts as old as the one just read.
    assert_eq!(s.stats().oldest_written_ms, Some(1_000));
    let rest = read_all(&mut s);
    assert_eq!(s.stats().oldest_written_ms, Some(1_001));
    for r in &rest {
        s.ack(r.id).unwrap();
    }
    assert_eq!(s.stats().oldest_written_ms, None);
    assert_eq!(s.dir(), tmp.path());
}

#[test]
fn acks_out_of_order_are_refused_and_repeated_acks_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut s, _) = open(tmp.path(), big());
    for i in 0..3 {
        append(&mut s, i);
    }
    let a = next(&mut s).unwrap();
    let b = next(&mut s).unwrap();
    assert!(matches!(
        s.ack(b.id),
        Err(StoreError::AckOutOfOrder { got, expected: Some(e) }) if got == b.id && e == a.id
    ));
    s.ack(a.id).unwrap();
    s.ack(a.id).unwrap();
    assert_eq!(s.stats().unacked_records, 1);
    // Not handed out yet.
    let c = RecordId {
        segment: b.id.segment,
        offset: b.id.offset + record::encoded_len(&batch(1)) as u64,
    };
    assert!(matches!(s.ack(c), Err(StoreError::AckOutOfOrder { .. })));
    s.ack(b.id).unwrap();
}

#[test]
fn sync_persists_the_checkpoint_only_when_it_moved() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = big();
    o.sync_every_append = true;
    let (mut s, _) = open(tmp.path(), o);
    append(&mut s, 0);
    append(&mut s, 1);
    let ack = tmp.path().join("ack");
    s.sync().unwrap();
    assert!(!ack.exists());
    let r = next(&mut s).unwrap();
    s.ack(r.id).unwrap();
    assert!(!ack.exists());
    s.sync().unwrap();
    let expected = RecordId {
        segment: 0,
        offset: r.id.offset + record::encoded_len(&batch(0)) as u64,
    };
    assert_eq!(read_checkpoint(&ack).unwrap(), Some(expected));
    fs::remove_file(&ack).unwrap();
    s.sync().unwrap();
    assert!(!ack.exists());
}
