//! Unit tests of what `open` finds: unacked records replayed, torn tails and damage cut, the
//! checkpoint trusted or not, segment numbers, the directory lock.

use super::*;
use crate::spool::checkpoint::encode_checkpoint;
use crate::spool::record::{self, HEADER_BYTES};

#[test]
fn reopen_replays_exactly_the_unacked_records() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let replay_from;
    {
        let (mut s, _) = open(tmp.path(), opts(300, 1 << 30));
        for i in 0..30 {
            append(&mut s, i);
        }
        let recs = read_all(&mut s);
        for r in &recs[..17] {
            s.ack(r.id).expect("ack");
        }
        s.sync().expect("sync");
        // Acked after the last sync: replayed (duplicates, never losses).
        s.ack(recs[17].id).expect("ack");
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
    assert_eq!(rec.oldest_arrived_ms, Some(1_000 + from));
    assert_eq!(rec.bytes, disk_bytes(tmp.path()));
    assert_eq!(rec.segments, seg_files(tmp.path()).len());
    assert_eq!(s.stats().unread_points, points_of(from..30));
    assert_eq!(s.stats().oldest_arrived_ms, Some(1_000 + from));
    let recs = read_all(&mut s);
    assert_eq!(batches(&recs), (from..30).collect::<Vec<_>>());
}

#[test]
fn appends_after_reopen_go_to_a_new_segment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let (mut s, _) = open(tmp.path(), big());
        append(&mut s, 0);
    }
    let before = fs::read(&seg_files(tmp.path())[0]).expect("read segment");
    let (mut s, rec) = open(tmp.path(), big());
    assert_eq!(rec.records, 1);
    append(&mut s, 1);
    let files = seg_files(tmp.path());
    assert_eq!(files.len(), 2);
    assert_eq!(fs::read(&files[0]).expect("read file"), before);
    assert!(files[1].ends_with("00000000000000000001.seg"));
    assert_eq!(batches(&read_all(&mut s)), vec![0, 1]);
}

#[test]
fn segment_numbers_are_never_reused_below_the_checkpoint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let (mut s, _) = open(tmp.path(), opts(100, 1 << 30));
        for i in 0..5 {
            append(&mut s, i);
        }
        for r in read_all(&mut s) {
            s.ack(r.id).expect("ack");
        }
        s.sync().expect("sync");
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
    let tmp = tempfile::tempdir().expect("tempdir");
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
    let full = fs::read(src.join(seg_name)).expect("read segment");
    let last = ids[2].offset as usize;
    for cut in last..full.len() {
        let dir = tmp.path().join(format!("cut{cut}"));
        fs::create_dir(&dir).expect("create dir");
        fs::write(dir.join(seg_name), &full[..cut]).expect("write torn segment");
        {
            let (mut s, rec) = open(&dir, big());
            assert_eq!(rec.records, 2, "cut at {cut}");
            let torn = (cut > last) as u64;
            assert_eq!(rec.corrupt_records, torn, "cut at {cut}");
            assert_eq!(rec.corrupt_bytes, (cut - last) as u64, "cut at {cut}");
            assert_eq!(
                fs::metadata(dir.join(seg_name)).expect("stat").len(),
                last as u64
            );
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
    let tmp = tempfile::tempdir().expect("tempdir");
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
    let first_len = fs::metadata(&first).expect("stat").len();
    // Inside the third record's payload.
    flip_byte(&first, ids[2].offset + 12);
    let (mut s, rec) = open(tmp.path(), opts(400, 1 << 30));
    assert_eq!(rec.corrupt_records, 1);
    assert_eq!(rec.corrupt_bytes, first_len - ids[2].offset);
    assert_eq!(fs::metadata(&first).expect("stat").len(), ids[2].offset);
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
        let tmp = tempfile::tempdir().expect("tempdir");
        {
            let (mut s, _) = open(tmp.path(), big());
            for i in 0..10 {
                append(&mut s, i);
            }
            let recs = read_all(&mut s);
            s.ack(recs[0].id).expect("ack");
            s.ack(recs[1].id).expect("ack");
            s.sync().expect("sync");
        }
        let ack = tmp.path().join("ack");
        match damage {
            "flip" => flip_byte(&ack, 3),
            "short" => fs::write(&ack, [0u8; 19]).expect("write file"),
            _ => fs::remove_file(&ack).expect("remove file"),
        }
        let (mut s, rec) = open(tmp.path(), big());
        assert!(rec.checkpoint_missing_or_corrupt, "{damage}");
        assert_eq!(rec.records, 10, "{damage}");
        assert_eq!(batches(&read_all(&mut s)), (0..10).collect::<Vec<_>>());
    }
}

#[test]
fn checkpoint_off_a_record_boundary_replays_its_segment() {
    let tmp = tempfile::tempdir().expect("tempdir");
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
    fs::write(&ack, encode_checkpoint(ids[2])).expect("write checkpoint");
    {
        let (mut s, rec) = open(tmp.path(), big());
        assert!(!rec.checkpoint_missing_or_corrupt);
        assert_eq!(batches(&read_all(&mut s)), vec![2, 3]);
    }
    for offset in [ids[2].offset + 1, 3] {
        let c = RecordId { segment: 0, offset };
        fs::write(&ack, encode_checkpoint(c)).expect("write checkpoint");
        let (mut s, rec) = open(tmp.path(), big());
        assert!(rec.checkpoint_missing_or_corrupt, "{offset}");
        assert_eq!(batches(&read_all(&mut s)), vec![0, 1, 2, 3]);
    }
}

#[test]
fn bad_magic_segment_is_deleted_and_counted() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let (mut s, _) = open(tmp.path(), opts(200, 1 << 30));
        for i in 0..12 {
            append(&mut s, i);
        }
    }
    let files = seg_files(tmp.path());
    assert!(files.len() >= 3);
    let bad_len = fs::metadata(&files[0]).expect("stat").len();
    flip_byte(&files[0], 0);
    // A crash right after creating a segment leaves it without (all of) its magic.
    fs::write(&files[2], b"BFSP").expect("write file");
    let (mut s, rec) = open(tmp.path(), opts(200, 1 << 30));
    assert_eq!(rec.corrupt_records, 2);
    assert_eq!(rec.corrupt_bytes, bad_len + 4);
    assert!(!files[0].exists());
    assert!(!files[2].exists());
    let got = batches(&read_all(&mut s));
    assert_eq!(got.len() as u64, rec.records);
    assert!(!got.contains(&0));
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*got.last().expect("points read back"), 11);
}

#[test]
fn record_over_max_record_bytes_on_disk_is_corrupt() {
    let tmp = tempfile::tempdir().expect("tempdir");
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
    let tmp = tempfile::tempdir().expect("tempdir");
    let (s, _) = open(tmp.path(), big());
    assert!(matches!(
        Store::open(tmp.path(), big()),
        Err(StoreError::Locked { path }) if path == tmp.path()
    ));
    drop(s);
    Store::open(tmp.path(), big()).expect("open");
}
