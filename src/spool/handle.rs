//! The spool as the rest of the program sees it: an async front to the synchronous [`Store`]
//! (every disk operation runs on Tokio's blocking pool), the ledger moves that go with each
//! operation, and the fallback to memory when the disk fails. When to spool is not decided
//! here: that is `forward::spill`'s policy.
//!
//! The disk never costs data that memory could still hold: when a write fails (disk full,
//! permission denied, read-only filesystem), the points are handed back to the caller, which
//! keeps them in memory as if there were no spool; writing is retried after
//! [`RETRY_AFTER_ERROR`]. Reading back does not wait for that: a disk that cannot be written
//! can usually still be read, and a segment that cannot be read is given up (counted
//! `spool_lost`) rather than retried, so one bad file never stops the replay.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

pub use super::status::SpoolStatus;
use super::store::{
    FullPolicy, ReadOutcome, ReadRecord, RecordId, Store, StoreError, StoreOptions, StoreStats,
};
use crate::accounting::Ledger;
use crate::config::settings::{SpoolFsync, SpoolFullPolicy, SpoolSettings};
use crate::events::{
    InternalEvent, LogLimits, SpoolCorruptFound, SpoolEvicted, SpoolFullRefused, SpoolRead,
    SpoolRecovered, SpoolSegmentLost, SpoolWriteFailed, SpoolWritten,
};
use crate::model::Datapoint;

mod append;
use append::{Evicted, append_all};

/// How long the spool rests after a disk error before it is tried again.
pub const RETRY_AFTER_ERROR: Duration = Duration::from_secs(10);

/// Points per record: a record is read back whole, so it stays near one request's worth.
pub const RECORD_POINTS: usize = 8192;

/// Largest record the store accepts or believes when reading (names are at most a few KiB).
const MAX_RECORD_BYTES: usize = 64 << 20;

/// The store; `None` until it could be opened. Locked only on the blocking pool, never on an
/// async worker: a slow fsync must not stall the flusher or a listener.
type Shared = Arc<Mutex<Option<Store>>>;

/// The shared spool. Cheap to clone through `Arc`.
#[derive(Debug)]
pub struct Spool {
    settings: SpoolSettings,
    store: Shared,
    /// No disk operation before this instant (after an error).
    resting_until: Mutex<Option<Instant>>,
    /// An open is under way: concurrent spills do not start another.
    opening: AtomicBool,
    /// Closed at the end of shutdown: never reopened.
    closed: AtomicBool,
    status: Mutex<SpoolStatus>,
    ledger: Arc<Ledger>,
    logs: Arc<LogLimits>,
    /// Points recovered at start not yet read back (for replay progress).
    recovered_left: AtomicU64,
    /// Wakes the drainer when a record was written.
    written: Notify,
}

/// Why a spill was refused; the points come back to the caller.
#[derive(Debug)]
pub struct Refused(pub Vec<Datapoint>);

/// A record read back for delivery.
#[derive(Debug)]
pub struct Replay {
    pub id: RecordId,
    pub points: Vec<Datapoint>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolOpenError {
    #[error(
        "spool_dir {dir:?} is in use by another running forwarder (lock held); give each instance its own spool_dir"
    )]
    Locked { dir: PathBuf },
}

fn options(s: &SpoolSettings) -> StoreOptions {
    StoreOptions {
        max_bytes: s.max_bytes,
        // Sixteen segments: eviction frees a sixteenth at a time.
        segment_bytes: (s.max_bytes / 16).clamp(256 << 10, 64 << 20),
        max_record_bytes: MAX_RECORD_BYTES,
        full_policy: match s.full_policy {
            SpoolFullPolicy::DropOldest => FullPolicy::DropOldest,
            SpoolFullPolicy::Block => FullPolicy::Block,
        },
        sync_every_append: s.fsync == SpoolFsync::EveryBatch,
    }
}

impl Spool {
    /// The spool, not yet opened (no I/O): [`Spool::open`] opens it, so that the admin server
    /// can already answer while a large spool is being recovered.
    pub fn new(settings: SpoolSettings, ledger: Arc<Ledger>, logs: Arc<LogLimits>) -> Arc<Spool> {
        Arc::new(Spool {
            status: Mutex::new(SpoolStatus {
                dir: settings.dir.clone(),
                max_bytes: settings.max_bytes,
                ..SpoolStatus::default()
            }),
            settings,
            store: Arc::new(Mutex::new(None)),
            resting_until: Mutex::new(None),
            opening: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            ledger,
            logs,
            recovered_left: AtomicU64::new(0),
            written: Notify::new(),
        })
    }

    /// Opens (and recovers) the spool. A directory that cannot be used is logged, counted and
    /// left for a later retry: the forwarder runs on memory meanwhile. Only a spool held by
    /// another live forwarder stops the start (two writers would corrupt it).
    pub async fn open(&self) -> Result<(), SpoolOpenError> {
        match self.try_open().await {
            Err(StoreError::Locked { .. }) => Err(SpoolOpenError::Locked {
                dir: self.settings.dir.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Opens the store if it is not open; `Ok` when it is usable now.
    async fn try_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) || self.opening.swap(true, Ordering::AcqRel) {
            return Err(StoreError::Io {
                op: "open",
                path: self.settings.dir.clone(),
                source: std::io::Error::other("closed, or another open is under way"),
            });
        }
        let dir = self.settings.dir.clone();
        let opts = options(&self.settings);
        let shared = self.store.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let mut guard = lock(&shared);
            if let Some(store) = guard.as_ref() {
                return Ok((store.stats(), None));
            }
            let (store, recovery) = Store::open(&dir, opts)?;
            let stats = store.stats();
            *guard = Some(store);
            Ok((stats, Some(recovery)))
        })
        .await
        .unwrap_or_else(|e| Err(join_error(e)));
        self.opening.store(false, Ordering::Release);
        match opened {
            Ok((stats, recovery)) => {
                if let Some(recovery) = recovery {
                    SpoolRecovered {
                        dir: &self.settings.dir,
                        segments: recovery.segments,
                        records: recovery.records,
                        points: recovery.points,
                        bytes: recovery.bytes,
                        corrupt_records: recovery.corrupt_records,
                        corrupt_bytes: recovery.corrupt_bytes,
                        checkpoint_missing_or_corrupt: recovery.checkpoint_missing_or_corrupt,
                        read_only: recovery.read_only,
                        unreadable_segments: recovery.unreadable_segments,
                        cleanup_failures: recovery.cleanup_failures,
                    }
                    .emit(&self.ledger, &self.logs);
                    self.recovered_left
                        .fetch_add(recovery.points, Ordering::Relaxed);
                    let mut st = self.status_lock();
                    st.recovered_points += recovery.points;
                    st.corrupt_records += recovery.corrupt_records;
                    st.corrupt_bytes += recovery.corrupt_bytes;
                    st.lost_segments += recovery.unreadable_segments;
                }
                *self.rest_lock() = None;
                self.refresh(Some(stats));
                if self.has_unread() {
                    self.written.notify_one();
                }
                Ok(())
            }
            Err(e) => {
                self.failed("open", &e);
                Err(e)
            }
        }
    }

    fn rest_lock(&self) -> MutexGuard<'_, Option<Instant>> {
        self.resting_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn status_lock(&self) -> MutexGuard<'_, SpoolStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies the store's figures (when a disk operation returned them) into the status.
    fn refresh(&self, stats: Option<StoreStats>) {
        let resting = self.rest_lock().is_some_and(|t| Instant::now() < t);
        let mut st = self.status_lock();
        if let Some(stats) = stats {
            st.bytes = stats.bytes;
            st.segments = stats.segments;
            st.unread_points = stats.unread_points;
            st.oldest_arrived_ms = stats.oldest_arrived_ms;
            st.writable = stats.writable;
            st.opened = true;
        }
        st.available = st.opened && !resting;
    }

    fn failed(&self, op: &'static str, e: &StoreError) {
        self.status_lock().write_errors += 1;
        *self.rest_lock() = Some(Instant::now() + RETRY_AFTER_ERROR);
        self.refresh(None);
        SpoolWriteFailed {
            op,
            error: e,
            retry_in: RETRY_AFTER_ERROR,
        }
        .emit(&self.ledger, &self.logs);
    }

    pub fn status(&self) -> SpoolStatus {
        self.refresh(None);
        self.status_lock().clone()
    }

    pub fn settings(&self) -> &SpoolSettings {
        &self.settings
    }

    /// Whether a spill has a chance now (open, not resting after an error).
    pub fn usable(&self) -> bool {
        self.rest_lock().is_none_or(|t| Instant::now() >= t)
    }

    /// Writes in-flight `points` to disk (the ledger moves them from in flight to spooled),
    /// stamped with `arrived`, when the oldest of them arrived (now when unknown). Refused —
    /// points handed back, still in flight — when the spool is full under `block`, or the disk
    /// failed (counted, logged; the spool rests before the next try).
    pub async fn spill(
        &self,
        points: Vec<Datapoint>,
        arrived: Option<Instant>,
    ) -> Result<(), Refused> {
        if points.is_empty() {
            return Ok(());
        }
        if !self.usable() {
            return Err(Refused(points));
        }
        if !self.status_lock().opened && self.try_open().await.is_err() {
            return Err(Refused(points));
        }
        let shared = self.store.clone();
        let ago = arrived.map_or(0, |t| u64::try_from(t.elapsed().as_millis()).unwrap_or(0));
        let (mut points, written, result, stats) = tokio::task::spawn_blocking(move || {
            let mut guard = lock(&shared);
            let Some(store) = guard.as_mut() else {
                return (points, 0, Ok(Evicted::default()), None);
            };
            let (written, result) = append_all(store, &points, ago);
            let stats = Some(store.stats());
            (points, written, result, stats)
        })
        .await
        .unwrap_or_else(|e| {
            (
                Vec::new(),
                0,
                Err((join_error(e), Evicted::default())),
                None,
            )
        });
        // What was written is on disk and stays there: only the rest comes back.
        if written > 0 {
            SpoolWritten {
                points: written as u64,
            }
            .emit(&self.ledger, &self.logs);
            self.written.notify_one();
        }
        let evicted = match &result {
            Ok(ev) | Err((_, ev)) => *ev,
        };
        if evicted.segments > 0 {
            self.status_lock().evicted_segments += evicted.segments;
            SpoolEvicted {
                segments: evicted.segments,
                points: evicted.points,
            }
            .emit(&self.ledger, &self.logs);
        }
        if evicted.full {
            self.status_lock().full_refusals += 1;
            SpoolFullRefused {
                kept_in_memory: (points.len() - written) as u64,
            }
            .emit(&self.ledger, &self.logs);
        }
        if let Err((e, _)) = &result {
            self.failed("write", e);
        }
        self.refresh(stats);
        let rest = points.split_off(written.min(points.len()));
        if rest.is_empty() {
            Ok(())
        } else {
            Err(Refused(rest))
        }
    }

    /// Reads the next record for delivery (the ledger moves its points from spooled to in
    /// flight). `None` when nothing is unread (or the spool is unusable).
    pub async fn next(&self) -> Option<Replay> {
        // A spool that could not be opened at start may hold an earlier run's records: the
        // open is tried again once the rest after the last failure is over. Reading an open
        // spool does not wait out that rest: a disk that cannot be written (full, read-only)
        // can usually still be read, and replaying it is what empties it.
        let opened = self.status_lock().opened;
        if !opened && (!self.usable() || self.try_open().await.is_err()) {
            return None;
        }
        loop {
            let shared = self.store.clone();
            let (read, stats) = tokio::task::spawn_blocking(move || match lock(&shared).as_mut() {
                Some(store) => {
                    let read = store.read();
                    (read, Some(store.stats()))
                }
                None => (Ok(ReadOutcome::Empty), None),
            })
            .await
            .unwrap_or_else(|e| (Err(join_error(e)), None));
            self.refresh(stats);
            match read {
                Ok(ReadOutcome::Record(ReadRecord { id, points, .. })) => {
                    let n = points.len() as u64;
                    SpoolRead { points: n }.emit(&self.ledger, &self.logs);
                    let left = self.recovered_left.load(Ordering::Relaxed);
                    let replayed = n.min(left);
                    self.recovered_left.fetch_sub(replayed, Ordering::Relaxed);
                    self.status_lock().replayed_points += replayed;
                    return Some(Replay { id, points });
                }
                Ok(ReadOutcome::Empty) => return None,
                Ok(ReadOutcome::Corrupt { lost_points, bytes }) => {
                    {
                        let mut st = self.status_lock();
                        st.corrupt_records += 1;
                        st.corrupt_bytes += bytes;
                    }
                    self.forget_recovered(lost_points);
                    SpoolCorruptFound {
                        points: lost_points,
                        bytes,
                    }
                    .emit(&self.ledger, &self.logs);
                }
                Ok(ReadOutcome::Lost { lost_points, error }) => {
                    self.status_lock().lost_segments += 1;
                    self.forget_recovered(lost_points);
                    SpoolSegmentLost {
                        points: lost_points,
                        error: &error,
                    }
                    .emit(&self.ledger, &self.logs);
                }
                Err(e) => {
                    self.failed("read", &e);
                    return None;
                }
            }
        }
    }

    /// Points recovered at start that will never be read back no longer count as to replay.
    fn forget_recovered(&self, points: u64) {
        let left = self.recovered_left.load(Ordering::Relaxed);
        self.recovered_left
            .fetch_sub(points.min(left), Ordering::Relaxed);
    }

    /// Every point of the record was settled (delivered or dropped with a reason).
    pub async fn ack(&self, id: RecordId) {
        let shared = self.store.clone();
        let (acked, stats) = tokio::task::spawn_blocking(move || match lock(&shared).as_mut() {
            Some(store) => {
                let acked = store.ack(id);
                (acked, Some(store.stats()))
            }
            None => (Ok(()), None),
        })
        .await
        .unwrap_or_else(|e| (Err(join_error(e)), None));
        if let Err(e) = acked {
            // The record stays unacknowledged on disk: replayed after a restart, which is safe.
            self.failed("ack", &e);
        }
        self.refresh(stats);
    }

    /// fsyncs written records and the checkpoint.
    pub async fn sync(&self) {
        let shared = self.store.clone();
        let synced = tokio::task::spawn_blocking(move || match lock(&shared).as_mut() {
            Some(store) => store.sync(),
            None => Ok(()),
        })
        .await
        .unwrap_or_else(|e| Err(join_error(e)));
        if let Err(e) = synced {
            self.failed("fsync", &e);
        }
    }

    /// fsyncs, then closes the store and releases the directory lock (at the very end of
    /// shutdown, so that a successor — or a restart in the same process — can open it).
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let shared = self.store.clone();
        let closed = tokio::task::spawn_blocking(move || {
            let mut guard = lock(&shared);
            let synced = guard.as_mut().map_or(Ok(()), Store::sync);
            *guard = None;
            synced
        })
        .await
        .unwrap_or_else(|e| Err(join_error(e)));
        if let Err(e) = closed {
            self.failed("fsync", &e);
        }
    }

    /// Waits until a record may have been written.
    pub async fn written(&self) {
        self.written.notified().await;
    }

    /// Whether records are on disk waiting to be read back (as of the last operation).
    pub fn has_unread(&self) -> bool {
        self.status_lock().unread_points > 0
    }
}

fn lock(store: &Mutex<Option<Store>>) -> MutexGuard<'_, Option<Store>> {
    // A panic while holding the lock leaves the store as the last completed call left it.
    store.lock().unwrap_or_else(|e| e.into_inner())
}

fn join_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Io {
        op: "blocking task",
        path: PathBuf::new(),
        source: std::io::Error::other(e.to_string()),
    }
}
