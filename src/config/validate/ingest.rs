//! What the listeners do with their input: the prefix, the timestamp window and the bounds
//! on frames, lines, names, connections and incomplete input.

use super::super::ConfigError;
use super::super::keys::Key;
use super::super::settings::IngestSettings;
use super::values::{Values, invalid};

/// Two ordinary carbon-relay frames (500 points, about 30 KiB each) arriving at once.
pub(crate) const MIN_PARTIAL_FRAME_BYTES: u64 = 64 * 1024;
/// The bytes of a pickle frame's length header.
const PICKLE_HEADER_BYTES: usize = 4;

pub(super) fn ingest_settings(v: &Values<'_>) -> Result<IngestSettings, ConfigError> {
    let ingest = IngestSettings {
        prefix: v.string(Key::MetricPrefix)?,
        overwrite_collection_timestamp: v.boolean(Key::OverwriteCollectionTimestamp)?,
        max_past: v.seconds(Key::MaxPast)?,
        max_future: v.seconds(Key::MaxFuture)?,
        // The pickle length header is a 32-bit count.
        max_frame_bytes: v.size(Key::MaxFrameBytes, 1, u64::from(u32::MAX))?,
        max_line_bytes: v.size(Key::MaxLineBytes, 1, u64::MAX)?,
        max_name_bytes: v.size(Key::MaxNameBytes, 1, u64::MAX)?,
        max_connections: v.count(Key::MaxConnections, 1, u64::MAX)?,
        idle_timeout: v.seconds(Key::IdleTimeout)?,
        partial_frame_bytes: v.size(Key::PartialFrameBytes, MIN_PARTIAL_FRAME_BYTES, u64::MAX)?,
    };
    // One connection alone may hold the largest frame (with its header) or line it is allowed
    // to send: a smaller budget would close every sender of one.
    let one_input =
        (ingest.max_frame_bytes.saturating_add(PICKLE_HEADER_BYTES)).max(ingest.max_line_bytes);
    if ingest.partial_frame_bytes < one_input {
        let (spec, entry) = v.required(Key::PartialFrameBytes)?;
        return Err(invalid(
            spec,
            entry,
            format!(
                "at least max_frame_bytes + 4 and max_line_bytes ({one_input} bytes): one connection may hold a whole frame or line"
            ),
        ));
    }
    Ok(ingest)
}
