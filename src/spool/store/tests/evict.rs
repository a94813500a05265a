//! Unit tests of the byte bound: `drop_oldest` evictions (in-flight records included) and
//! `block`.

use super::*;
use crate::spool::record;

#[test]
fn drop_oldest_stays_within_max_bytes_and_counts_evictions() {
    let tmp = tempfile::tempdir().expect("tempdir");
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
                s.ack(id).expect("ack");
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
    let tmp = tempfile::tempdir().expect("tempdir");
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
    let tmp = tempfile::tempdir().expect("tempdir");
    let one = (MAGIC.len() + record::encoded_len(&batch(0))) as u64;
    let (mut s, _) = open(tmp.path(), opts(1 << 20, one + 10));
    append(&mut s, 0);
    let r = next(&mut s).expect("a record to read");
    assert_eq!(s.stats().unacked_records, 1);
    assert_eq!(
        append(&mut s, 3),
        Appended::Stored {
            evicted_segments: 1,
            evicted_points: 0
        }
    );
    assert_eq!(s.stats().unacked_records, 0);
    s.ack(r.id).expect("ack");
    assert_eq!(batches(&read_all(&mut s)), vec![3]);
}

#[test]
fn block_returns_full_and_writes_nothing() {
    // Several segments, then one segment that never reaches segment_bytes.
    for segment_bytes in [250, 1 << 20] {
        let tmp = tempfile::tempdir().expect("tempdir");
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
                .map(|p| (p.clone(), fs::read(&p).expect("read file")))
                .collect()
        };
        let before = contents(tmp.path());
        assert_eq!(append(&mut s, stored), Appended::Full);
        assert_eq!(s.stats(), stats);
        assert_eq!(contents(tmp.path()), before);
        // Once everything is delivered there is room again, even the space of an active
        // segment that would otherwise never rotate.
        for r in read_all(&mut s) {
            s.ack(r.id).expect("ack");
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
