//! Unit tests of reading and acking: the order of acks, when an emptied segment is deleted,
//! the figures, the checkpoint `sync` persists, and damage found by `read`.

use super::*;
use crate::spool::record;
use crate::spool::segment::MAGIC_LEN;

#[test]
fn ack_deletes_a_segment_exactly_when_its_last_record_is_acked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = open(tmp.path(), opts(300, 1 << 30));
    for i in 0..20 {
        append(&mut s, i);
    }
    let first = seg_files(tmp.path())[0].clone();
    let recs = read_all(&mut s);
    let in_first: Vec<_> = recs.iter().filter(|r| r.id.segment == 0).collect();
    assert!(in_first.len() > 1);
    for r in &in_first[..in_first.len() - 1] {
        s.ack(r.id).expect("ack");
        assert!(first.exists());
    }
    s.ack(in_first[in_first.len() - 1].id).expect("ack");
    assert!(!first.exists());
    assert_eq!(s.stats().segments, seg_files(tmp.path()).len());
    assert_eq!(s.stats().bytes, disk_bytes(tmp.path()));
}

#[test]
fn bit_flip_found_by_read_cuts_and_counts_the_lost_points() {
    let tmp = tempfile::tempdir().expect("tempdir");
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
    let first_len = fs::metadata(&first).expect("stat").len();
    flip_byte(&first, ids[2].offset + 12);
    assert_eq!(
        batches(&[
            next(&mut s).expect("a record to read"),
            next(&mut s).expect("a record to read")
        ]),
        vec![0, 1]
    );
    let unread_before = s.stats().unread_points;
    match s.read().expect("read") {
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
    assert_eq!(fs::metadata(&first).expect("stat").len(), ids[2].offset);
    assert_eq!(s.stats().bytes, disk_bytes(&dir));
    let rest = read_all(&mut s);
    assert_eq!(batches(&rest), (in_first..30).collect::<Vec<_>>());
}

#[test]
fn bit_flip_in_the_active_segment_cuts_it_and_appends_continue() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = open(tmp.path(), big());
    for i in 0..4 {
        append(&mut s, i);
    }
    let seg = seg_files(tmp.path())[0].clone();
    let second = MAGIC_LEN + record::encoded_len(&batch(0)) as u64;
    let len = fs::metadata(&seg).expect("stat").len();
    // Damage the length field of the second record: it now claims 256 MiB more.
    flip_byte(&seg, second + 3);
    let r0 = next(&mut s).expect("a record to read");
    assert_eq!(batches(std::slice::from_ref(&r0)), vec![0]);
    match s.read().expect("read") {
        ReadOutcome::Corrupt { lost_points, bytes } => {
            assert_eq!(lost_points, points_of(1..4));
            assert_eq!(bytes, len - second);
        }
        other => panic!("{other:?}"),
    }
    assert!(next(&mut s).is_none());
    append(&mut s, 8);
    assert_eq!(batches(&read_all(&mut s)), vec![8]);
    s.ack(r0.id).expect("ack");
    drop(s);
    let (mut s, rec) = open(tmp.path(), big());
    assert_eq!(rec.corrupt_records, 0);
    assert_eq!(batches(&read_all(&mut s)), vec![0, 8]);
}

#[test]
fn stats_follow_reads_and_acks() {
    let tmp = tempfile::tempdir().expect("tempdir");
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
    assert_eq!(st.oldest_arrived_ms, Some(1_000));
    assert_eq!(st.segments, 1);
    let r = next(&mut s).expect("a record to read");
    assert_eq!(s.stats().unread_points, points_of(1..3));
    assert_eq!(s.stats().unacked_records, 1);
    assert_eq!(s.stats().oldest_arrived_ms, Some(1_000));
    s.ack(r.id).expect("ack");
    assert_eq!(s.stats().unacked_records, 0);
    // A lower bound: the next unread record counts as old as the one just read.
    assert_eq!(s.stats().oldest_arrived_ms, Some(1_000));
    let rest = read_all(&mut s);
    assert_eq!(s.stats().oldest_arrived_ms, Some(1_001));
    for r in &rest {
        s.ack(r.id).expect("ack");
    }
    assert_eq!(s.stats().oldest_arrived_ms, None);
    assert_eq!(s.dir(), tmp.path());
}

#[test]
fn acks_out_of_order_are_refused_and_repeated_acks_ignored() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = open(tmp.path(), big());
    for i in 0..3 {
        append(&mut s, i);
    }
    let a = next(&mut s).expect("a record to read");
    let b = next(&mut s).expect("a record to read");
    assert!(matches!(
        s.ack(b.id),
        Err(StoreError::AckOutOfOrder { got, expected: Some(e) }) if got == b.id && e == a.id
    ));
    s.ack(a.id).expect("ack");
    s.ack(a.id).expect("ack");
    assert_eq!(s.stats().unacked_records, 1);
    // Not handed out yet.
    let c = RecordId {
        segment: b.id.segment,
        offset: b.id.offset + record::encoded_len(&batch(1)) as u64,
    };
    assert!(matches!(s.ack(c), Err(StoreError::AckOutOfOrder { .. })));
    s.ack(b.id).expect("ack");
}

#[test]
fn sync_persists_the_checkpoint_only_when_it_moved() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut o = big();
    o.sync_every_append = true;
    let (mut s, _) = open(tmp.path(), o);
    append(&mut s, 0);
    append(&mut s, 1);
    let ack = tmp.path().join("ack");
    s.sync().expect("sync");
    assert!(!ack.exists());
    let r = next(&mut s).expect("a record to read");
    s.ack(r.id).expect("ack");
    assert!(!ack.exists());
    s.sync().expect("sync");
    let expected = RecordId {
        segment: 0,
        offset: r.id.offset + record::encoded_len(&batch(0)) as u64,
    };
    assert_eq!(
        read_checkpoint(&ack).expect("read checkpoint"),
        Some(expected)
    );
    fs::remove_file(&ack).expect("remove file");
    s.sync().expect("sync");
    assert!(!ack.exists());
}

/// The figure behind the spool's part of the delivery lag is the arrival of the oldest point
/// still to deliver, kept while its record is in flight and after a restart.
#[test]
fn the_oldest_arrival_is_kept_in_flight_and_across_a_reopen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut s, _) = open(tmp.path(), big());
    let stamp = |written_ms, arrived_ms| record::Stamp {
        written_ms,
        arrived_ms,
    };
    s.append(&batch(0), stamp(2_000, 1_500)).expect("append");
    s.append(&batch(1), stamp(2_100, 1_900)).expect("append");
    assert_eq!(s.stats().oldest_arrived_ms, Some(1_500));
    let first = next(&mut s).expect("record");
    assert_eq!(s.stats().oldest_arrived_ms, Some(1_500), "in flight");
    s.ack(first.id).expect("ack");
    // Until the next record is read, its arrival is taken to be the one just read (no younger:
    // the module notes).
    assert_eq!(s.stats().oldest_arrived_ms, Some(1_500));
    s.sync().expect("sync");
    drop(s);
    let (s, recovery) = open(tmp.path(), big());
    assert_eq!(recovery.oldest_arrived_ms, Some(1_900), "{recovery:?}");
    assert_eq!(s.stats().oldest_arrived_ms, Some(1_900));
    let mut s = s;
    next(&mut s).expect("record");
    assert_eq!(s.stats().oldest_arrived_ms, Some(1_900), "in flight");
}
