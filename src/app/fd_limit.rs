//! The process's open-files limit. Every connection (carbon or admin), listener, spool file and
//! connection to Blueflood or Keystone takes a file descriptor, and the usual default soft
//! limit (1024) is below what `max_connections` alone allows. As common servers do, the soft
//! limit is raised to the hard limit at start — no privilege is needed for that — and the
//! configured connection bounds are then compared with it: a warning names the keys when they
//! could use every descriptor, since a listener that cannot accept serves nobody.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::config::settings::Settings;

/// Descriptors used besides the bounded connections: listeners, the runtime's own, stdio, the
/// spool's files, connections to Blueflood and Keystone, the credentials watcher. Generous on
/// purpose: the check only warns, and a low guess would hide a real risk.
const RESERVED: u64 = 64;

/// Linux's default `fs.nr_open`, the most a soft limit may be when the hard one is "unlimited"
/// (which `setrlimit` refuses for open files).
const UNLIMITED_AS: u64 = 1 << 20;

/// The soft and hard limits, before and after [`raise_open_files_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub soft_before: u64,
    pub soft: u64,
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, logs what it did, and warns when the
/// connection bounds of `settings` could exhaust the result.
pub fn raise_open_files_limit(settings: &Settings) -> OpenFiles {
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(UNLIMITED_AS);
    let soft_before = limit.current.unwrap_or(hard);
    let mut soft = soft_before;
    if soft_before < hard {
        match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: limit.maximum,
            },
        ) {
            Ok(()) => {
                soft = hard;
                tracing::info!(
                    soft_was = soft_before,
                    soft,
                    hard,
                    "raised the soft open files limit to the hard limit"
                );
            }
            Err(e) => tracing::warn!(
                soft = soft_before,
                hard,
                error = %e,
                "could not raise the soft open files limit to the hard limit"
            ),
        }
    } else {
        tracing::debug!(soft, hard, "open files limit already at the hard limit");
    }
    let needed =
        settings.ingest.max_connections as u64 + settings.admin.max_connections as u64 + RESERVED;
    if needed > soft {
        tracing::warn!(
            open_files_limit = soft,
            max_connections = settings.ingest.max_connections,
            admin_max_connections = settings.admin.max_connections,
            "max_connections and admin_max_connections allow more connections than the open files \
             limit leaves room for: lower them or raise the limit (ulimit -n, LimitNOFILE)"
        );
    }
    OpenFiles {
        soft_before,
        soft,
        hard,
    }
}
