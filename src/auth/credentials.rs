//! Where the user and the key (API key or password) come from, and keeping them current.
//!
//! Owns: [`Credentials`] (secret redacted in `Debug`), [`CredentialStore`] (the current
//! credentials, a generation number that changes on every rotation, and the reload counters
//! and last error that `AuthStatus` reports), and the file source: values read from files named
//! by `user_file`/`key_file`, re-read when their directory changes (the `notify` crate) and, as
//! a fallback for file systems without notifications, every poll interval.
//!
//! Kubernetes updates a mounted Secret by writing a new timestamped directory and renaming the
//! `..data` symlink onto it; the per-key files are symlinks through `..data`. Watching the
//! *directory* sees that rename; watching the file would keep watching the old inode. A plain
//! rewrite of the file (non-Kubernetes users) shows up in the same directory watch.
//! A source that becomes unreadable or empty never replaces good credentials: the failure is
//! counted, logged once per distinct reason and reported, and the last good values stay.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use notify::Watcher;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Notify;
use tokio_util::task::AbortOnDropHandle;

use crate::config::settings::{AuthSettings, SecretSource};
use crate::files::{self, OffThreadReader};

/// What one off-thread read of the credential files gives.
type ReadResult = Result<Credentials, String>;

/// Quiet time after a change notification before reading: a plain rewrite arrives as several
/// events (truncate, write, close) and reading after the first could see an empty file.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// A user and their API key or password.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub secret: SecretString,
}

impl Credentials {
    pub fn new(user: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            secret: SecretString::from(secret.into()),
        }
    }

    fn same_as(&self, other: &Credentials) -> bool {
        self.user == other.user && self.secret.expose_secret() == other.secret.expose_secret()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("secret", &"[redacted]")
            .finish()
    }
}

#[derive(Default)]
struct StoreState {
    current: Option<Arc<Credentials>>,
    /// Changes whenever `current` does; a token is only valid for the generation it was
    /// obtained with.
    generation: u64,
    last_error: Option<String>,
    last_rotation: Option<SystemTime>,
}

/// The current credentials, shared by the source that updates them and the client that uses
/// them.
pub struct CredentialStore {
    /// Where, never what: "file /etc/keystone/apiKey", "kubernetes secret ns/name".
    label: String,
    state: Mutex<StoreState>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    /// Woken on every successful load, for callers waiting for the first one.
    loaded: Notify,
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialStore")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// A copy of the store's bookkeeping for `AuthStatus`.
#[derive(Debug, Clone)]
pub(crate) struct StoreStatus {
    pub loaded: bool,
    pub last_error: Option<String>,
    pub last_rotation: Option<SystemTime>,
    pub reloads: u64,
    pub reload_failures: u64,
}

impl CredentialStore {
    pub fn new(label: impl Into<String>, initial: Option<Credentials>) -> Self {
        Self {
            label: label.into(),
            state: Mutex::new(StoreState {
                current: initial.map(Arc::new),
                ..StoreState::default()
            }),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            loaded: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, StoreState> {
        // The state stays consistent at every unlock; a panic elsewhere must not spread.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The credentials and their generation, or `None` before the first successful load.
    pub fn current(&self) -> Option<(u64, Arc<Credentials>)> {
        let st = self.lock();
        st.current.clone().map(|c| (st.generation, c))
    }

    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Offers freshly read credentials. Returns `true` when they differ from the current ones:
    /// a rotation (or the first load), after which tokens of older generations are stale.
    pub fn offer(&self, creds: Credentials) -> bool {
        let mut st = self.lock();
        let recovered = st.last_error.take().is_some();
        if st.current.as_ref().is_some_and(|c| c.same_as(&creds)) {
            if recovered {
                tracing::info!(source = %self.label, "credentials readable again (unchanged)");
            }
            return false;
        }
        let first = st.current.is_none();
        st.current = Some(Arc::new(creds));
        st.generation += 1;
        if !first {
            st.last_rotation = Some(SystemTime::now());
            self.reloads.fetch_add(1, Ordering::Relaxed);
        }
        drop(st);
        if first {
            tracing::info!(source = %self.label, "credentials loaded");
        } else {
            tracing::info!(source = %self.label, "credentials changed; the cached token is dropped");
        }
        self.loaded.notify_waiters();
        true
    }

    /// Records a failed read: the last good credentials stay in use.
    pub fn failed(&self, reason: String) {
        self.reload_failures.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        // Log once per distinct reason: a broken mount polled every few seconds must not flood.
        if st.last_error.as_deref() != Some(reason.as_str()) {
            let keeping = st.current.is_some();
            tracing::warn!(
                source = %self.label,
                error = %reason,
                keeping_last_good = keeping,
                "cannot read credentials"
            );
            st.last_error = Some(reason);
        }
    }

    /// Waits until credentials are loaded, at most `timeout`. Returns whether they are.
    pub async fn wait_loaded(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.loaded.notified();
            if self.lock().current.is_some() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.lock().current.is_some();
            }
        }
    }

    pub(crate) fn status(&self) -> StoreStatus {
        let st = self.lock();
        StoreStatus {
            loaded: st.current.is_some(),
            last_error: st.last_error.clone(),
            last_rotation: st.last_rotation,
            reloads: self.reloads.load(Ordering::Relaxed),
            reload_failures: self.reload_failures.load(Ordering::Relaxed),
        }
    }
}

/// One half of the credentials: fixed at load time, or the content of a file.
#[derive(Debug, Clone)]
enum Part {
    Fixed(SecretString),
    File(PathBuf),
}

impl Part {
    fn from_source(source: &SecretSource, value: &str) -> Part {
        match source {
            SecretSource::File(path) => Part::File(path.clone()),
            _ => Part::Fixed(SecretString::from(value.to_owned())),
        }
    }

    fn read(&self) -> Result<String, String> {
        match self {
            Part::Fixed(v) => Ok(v.expose_secret().to_owned()),
            Part::File(path) => read_value_file(path),
        }
    }

    fn path(&self) -> Option<&Path> {
        match self {
            Part::File(p) => Some(p),
            Part::Fixed(_) => None,
        }
    }
}

/// The content of a mounted value, minus one trailing `\n` or `\r\n` (as `config` does at load).
/// Only a regular file of at most [`files::MAX_VALUE_FILE_BYTES`]. Blocking: runs on an
/// [`OffThreadReader`]. The error names the file, never its content.
fn read_value_file(path: &Path) -> Result<String, String> {
    let bytes = files::read_small(path, files::MAX_VALUE_FILE_BYTES)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut text =
        String::from_utf8(bytes).map_err(|_| format!("{} is not valid UTF-8", path.display()))?;
    if text.ends_with("\r\n") {
        text.truncate(text.len() - 2);
    } else if text.ends_with('\n') {
        text.truncate(text.len() - 1);
    }
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(text)
}

/// User and key read from files (either may be fixed instead).
#[derive(Debug, Clone)]
struct FileSource {
    user: Part,
    key: Part,
}

impl FileSource {
    fn read(&self) -> Result<Credentials, String> {
        Ok(Credentials::new(self.user.read()?, self.key.read()?))
    }

    /// The distinct directories holding the watched files.
    fn directories(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = [self.user.path(), self.key.path()]
            .into_iter()
            .flatten()
            .map(|p| match p.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            })
            .collect();
        dirs.dedup();
        dirs
    }

    /// Reads the files off the runtime (a FIFO, a hung mount or a slow disk must not stall it)
    /// and offers what was read; a read that fails, times out or is still stuck from an earlier
    /// poll keeps the last good credentials.
    async fn reload(&self, store: &CredentialStore, reader: &mut OffThreadReader<ReadResult>) {
        let source = self.clone();
        match reader.run(files::READ_TIMEOUT, move || source.read()).await {
            Ok(Ok(creds)) => {
                store.offer(creds);
            }
            Ok(Err(reason)) => store.failed(reason),
            Err(e) => store.failed(format!("cannot read {}: {e}", self.files())),
        }
    }

    /// The files, for messages: "/a" or "/a, /b".
    fn files(&self) -> String {
        [self.user.path(), self.key.path()]
            .into_iter()
            .flatten()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// "file /a" or "files /a, /b" (the user file first), or where the fixed key came from.
fn label(settings: &AuthSettings) -> String {
    match (&settings.user_source, &settings.key_source) {
        (SecretSource::File(u), SecretSource::File(k)) if u != k => {
            format!("files {}, {}", u.display(), k.display())
        }
        (_, key) => key.to_string(),
    }
}

/// The store for credentials given in the configuration, and the task watching whichever of
/// them came from files (none when neither did). Aborted when the handles are dropped.
pub(super) fn from_settings(
    settings: &AuthSettings,
) -> (Arc<CredentialStore>, Vec<AbortOnDropHandle<()>>) {
    let source = FileSource {
        user: Part::from_source(&settings.user_source, &settings.user),
        key: Part::from_source(&settings.key_source, settings.key.expose_secret()),
    };
    let store = Arc::new(CredentialStore::new(
        label(settings),
        Some(Credentials {
            user: settings.user.clone(),
            secret: settings.key.clone(),
        }),
    ));
    let mut tasks = Vec::new();
    if !source.directories().is_empty() {
        tasks.push(AbortOnDropHandle::new(tokio::spawn(watch_files(
            source,
            store.clone(),
            settings.poll_interval,
        ))));
    }
    (store, tasks)
}

/// Re-reads `source` after each change notification for its directories and every `poll`.
async fn watch_files(source: FileSource, store: Arc<CredentialStore>, poll: Duration) {
    let changed = Arc::new(Notify::new());
    // Kept alive for as long as this task: dropping it stops the notifications.
    let _watcher = start_watcher(&source.directories(), changed.clone());
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; the values were just read at load
    let mut reader = OffThreadReader::default();
    loop {
        tokio::select! {
            () = changed.notified() => tokio::time::sleep(DEBOUNCE).await,
            _ = tick.tick() => {}
        }
        source.reload(&store, &mut reader).await;
    }
}

/// A directory watcher that wakes `changed`, or `None` (polling only) when the platform or
/// the directory does not allow one.
fn start_watcher(dirs: &[PathBuf], changed: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        // Our own reads produce access events; reacting to them would loop.
        if let Ok(e) = event
            && !matches!(e.kind, notify::EventKind::Access(_))
        {
            changed.notify_one();
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch credential files; polling only");
            return None;
        }
    };
    for dir in dirs {
        if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch credential directory; polling only");
        }
    }
    Some(watcher)
}

#[cfg(test)]
mod tests;
