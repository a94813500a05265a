//! One process per spool directory, and whether this one may write in it.
//!
//! The lock is an exclusive `flock` on the directory itself (an open handle of it, held as
//! long as the store), not on a file inside it: a lock file can be deleted from under a
//! running forwarder, and the next one would then create a new file, lock that and share the
//! spool. A directory cannot be unlinked while it is in use as the spool (it is not empty), and
//! a read-only handle is enough to lock it, so the lock also holds in a directory this process
//! cannot write to.
//!
//! Writability is probed by creating and removing the checkpoint's temporary file: permission
//! bits, a read-only mount and the immutable attribute all show as that failing. A spool that
//! cannot be written is still replayed (see `store`'s read-only notes).

use std::fs::{self, File, TryLockError};
use std::io;
use std::path::Path;

use super::checkpoint::ACK_TMP_FILE;
use super::store::{StoreError, io_error};

/// Held, never read: the lock lives as long as this handle.
#[derive(Debug)]
pub(super) struct DirLock {
    _dir: File,
}

/// Locks `dir` (which must exist) for this process, or says it is in use.
pub(super) fn lock(dir: &Path) -> Result<DirLock, StoreError> {
    let handle = File::open(dir).map_err(io_error("open directory", dir))?;
    match handle.try_lock() {
        Ok(()) => Ok(DirLock { _dir: handle }),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(e)) => Err(io_error("lock directory", dir)(e)),
    }
}

/// `Ok` when names can be created and removed in `dir`; otherwise why not.
pub(super) fn probe_writable(dir: &Path) -> io::Result<()> {
    let probe = dir.join(ACK_TMP_FILE);
    File::create(&probe)?;
    fs::remove_file(&probe)
}

#[cfg(test)]
mod tests;
