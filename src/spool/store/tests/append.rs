//! Unit tests of appending: records come back in order across segments, rotation, and
//! records that can never be stored.

use super::*;
use crate::model::Datapoint;
use crate::spool::record;

#[test]
fn round_trip_across_many_segments_keeps_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
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
        assert!(fs::metadata(&p).expect("stat").len() <= 300, "{p:?}");
    }
    let recs = read_all(&mut s);
    assert_eq!(batches(&recs), (0..60).collect::<Vec<_>>());
    assert!(recs.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(s.stats().unread_points, 0);
    assert_eq!(s.stats().unacked_records, 60);
    for r in &recs {
        s.ack(r.id).expect("ack");
    }
    // Only the active segment is left: sealed segments go once fully acked.
    assert_eq!(s.stats().segments, 1);
    assert_eq!(seg_files(tmp.path()).len(), 1);
    assert_eq!(s.stats().unacked_records, 0);
    assert_eq!(s.stats().oldest_arrived_ms, None);
}

#[test]
fn too_large_records_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
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
    let tmp2 = tempfile::tempdir().expect("tempdir");
    let (mut s2, _) = open(tmp2.path(), o);
    assert!(matches!(
        s2.append(&long, 0),
        Err(StoreError::TooLarge { .. })
    ));
    assert!(seg_files(tmp.path()).is_empty());
    assert!(seg_files(tmp2.path()).is_empty());
    // A record bigger than segment_bytes goes alone into its own segment.
    let tmp3 = tempfile::tempdir().expect("tempdir");
    let (mut s3, _) = open(tmp3.path(), opts(50, 1 << 20));
    s3.append(&long, 0).expect("append");
    s3.append(&long, 0).expect("append");
    assert_eq!(s3.stats().segments, 2);
}
