//! Bounded, non-blocking reads of small regular files: the credential files (`--key-file`,
//! `--user-file`), the admin token file and every other `*_file` value.
//!
//! Owns: [`read_small`] (refuses anything that is not a regular file without opening it for a
//! blocking read, and never reads more than a bound), [`read_small_within`] (the same with a
//! deadline, for start-up), [`OffThreadReader`] (the same off the async runtime, one read at a
//! time, for re-reading files while running) and [`FileError`].
//!
//! Why this much care for a few bytes: a FIFO blocks `open(2)` until a writer comes, a
//! character device can be endless, a file can be huge or grow while it is read, and a hung
//! network mount blocks any system call on it. Any of these on a runtime thread stalls every
//! task scheduled behind it (seen: `/livez` and `/status` stop answering); at start it hangs
//! before anything is bound.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

/// The most bytes a secret or value file may hold. Every value read from a file is a short
/// string — an API key, a password (Keystone refuses passwords over 4096 bytes by default), a
/// token, a URL, a tenant ID — so 64 KiB is far more than any needs while a file of an
/// attacker's or an accident's size (a log file, `/dev/zero` copied by mistake) is refused
/// before it costs memory. Not a setting: no legitimate value comes near it.
pub const MAX_VALUE_FILE_BYTES: u64 = 64 * 1024;

/// How long one read of such files may take. A local or tmpfs file (a mounted Secret) is read
/// in microseconds; one that takes seconds sits on a hung network mount, and waiting longer
/// only delays the error. Not a setting for the same reason.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a file could not be used. Messages never include the content; callers name the file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("not a regular file (it is {0}); give a regular file")]
    NotRegular(&'static str),
    #[error("larger than {0} bytes, the bound for a secret or value file")]
    TooLarge(u64),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no answer from the file system within {:.0} s (a hung mount?)", .0.as_secs_f64())]
    TimedOut(Duration),
    #[error("an earlier read has not finished yet (a hung mount?); not starting another")]
    Busy,
}

fn kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else {
        "not a plain file"
    }
}

/// The content of `path` (symlinks followed), at most `limit` bytes. Blocks only as long as
/// the file system does: the type is checked before opening (opening some devices has side
/// effects, a FIFO blocks), the open is non-blocking in case the path was swapped for a FIFO
/// in between, and the type is checked again on the open file. At most `limit + 1` bytes are
/// read, so a file growing after the size check is still bounded.
pub fn read_small(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(FileError::NotRegular(kind(meta.file_type())));
    }
    if meta.len() > limit {
        return Err(FileError::TooLarge(limit));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(FileError::NotRegular(kind(meta.file_type())));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len().min(limit)).unwrap_or(0));
    Read::take(&file, limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge(limit));
    }
    Ok(bytes)
}

/// [`read_small`] on a thread of its own, waiting at most `timeout`: for reads before the
/// runtime exists (configuration), where the process exits on the error anyway, so a thread
/// left behind on a hung mount costs nothing.
pub fn read_small_within(path: &Path, limit: u64, timeout: Duration) -> Result<Vec<u8>, FileError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("read-file".into())
        .spawn(move || {
            let _ = tx.send(read_small(&owned, limit));
        })?;
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(FileError::TimedOut(timeout)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(FileError::Io(
            std::io::Error::other("the reading thread ended without an answer"),
        )),
    }
}

/// Runs blocking file reads off the async runtime, one at a time. A read that outlives its
/// timeout is left to finish on its own thread (a system call cannot be cancelled), and until
/// it has, every new read is refused with [`FileError::Busy`]: a hung mount costs one thread,
/// not one per poll. A plain thread rather than `spawn_blocking`, because the runtime waits for
/// its blocking tasks when it shuts down and a hung read would then hang the exit.
pub struct OffThreadReader<T> {
    pending: Option<tokio::sync::oneshot::Receiver<T>>,
}

impl<T> Default for OffThreadReader<T> {
    fn default() -> Self {
        Self { pending: None }
    }
}

impl<T: Send + 'static> OffThreadReader<T> {
    /// Runs `read` on a new thread and waits for it at most `timeout`.
    pub async fn run(
        &mut self,
        timeout: Duration,
        read: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, FileError> {
        if let Some(rx) = self.pending.as_mut() {
            match rx.try_recv() {
                // The late result is stale by now: read again.
                Ok(_) | Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    self.pending = None;
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {
                    return Err(FileError::Busy);
                }
            }
        }
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("read-file".into())
            .spawn(move || {
                let _ = tx.send(read());
            })?;
        match tokio::time::timeout(timeout, &mut rx).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(FileError::Io(std::io::Error::other(
                "the reading thread ended without an answer",
            ))),
            Err(_) => {
                self.pending = Some(rx);
                Err(FileError::TimedOut(timeout))
            }
        }
    }
}

#[cfg(test)]
mod tests;
