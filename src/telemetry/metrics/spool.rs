//! The disk spool's families on `/metrics`: present only when a spool is configured, read
//! from the spool's own status and the ledger snapshot at scrape time.

use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::{LedgerCollector, counter, gauge};
use crate::spool::Spool;

impl LedgerCollector {
    pub(super) fn encode_spool(
        &self,
        enc: &mut DescriptorEncoder<'_>,
        spool: &Spool,
        s: &crate::accounting::LedgerSnapshot,
    ) -> std::fmt::Result {
        let st = spool.status();
        gauge(
            enc,
            "spool_datapoints",
            "Datapoints in the disk spool, not yet read back",
            None,
            s.spooled_points as f64,
        )?;
        gauge(
            enc,
            "spool",
            "Disk spool use",
            Some(&Unit::Bytes),
            st.bytes as f64,
        )?;
        gauge(
            enc,
            "spool_limit",
            "Disk spool bound",
            Some(&Unit::Bytes),
            st.max_bytes as f64,
        )?;
        gauge(
            enc,
            "spool_segments",
            "Segment files in the disk spool",
            None,
            st.segments as f64,
        )?;
        gauge(
            enc,
            "spool_oldest_age",
            "Age of the oldest unacknowledged spool record (0 when empty)",
            Some(&Unit::Seconds),
            st.oldest_age_seconds().unwrap_or(0.0),
        )?;
        gauge(
            enc,
            "spool_available",
            "1 when the spool can be written, 0 after a disk error",
            None,
            f64::from(u8::from(st.available)),
        )?;
        gauge(
            enc,
            "spool_spooling",
            "1 while Blueflood is failing and new batches go to the spool",
            None,
            f64::from(u8::from(self.spill.blueflood_failing())),
        )?;
        counter(
            enc,
            "spool_written_datapoints",
            "Datapoints written to the spool",
            s.spool_written,
        )?;
        counter(
            enc,
            "spool_read_datapoints",
            "Datapoints read back from the spool for delivery",
            s.spool_read,
        )?;
        gauge(
            enc,
            "spool_replay_total_datapoints",
            "Datapoints found in the spool at start",
            None,
            st.recovered_points as f64,
        )?;
        gauge(
            enc,
            "spool_replay_done_datapoints",
            "Of those, datapoints read back so far",
            None,
            st.replayed_points as f64,
        )?;
        counter(
            enc,
            "spool_corrupt_records",
            "Spool records found damaged (checksum, torn write) and cut off",
            st.corrupt_records,
        )?;
        counter(
            enc,
            "spool_evicted_segments",
            "Spool segments deleted because the spool was full",
            st.evicted_segments,
        )?;
        counter(
            enc,
            "spool_errors",
            "Spool disk operations that failed (data kept in memory)",
            st.write_errors,
        )?;
        counter(
            enc,
            "spool_lost_segments",
            "Spool segments that could not be read back (their datapoints dropped as spool_lost)",
            st.lost_segments,
        )?;
        gauge(
            enc,
            "spool_writable",
            "1 when the spool directory can be written, 0 while it is only replayed",
            None,
            f64::from(u8::from(st.writable)),
        )?;
        Ok(())
    }
}
