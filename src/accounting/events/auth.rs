//! The identity service's events. Auth failures themselves are counted by the provider
//! (`TokenProvider::status`), not the ledger: these only explain what needs a person.

use super::{InternalEvent, LogLimits};
use crate::accounting::Ledger;

/// Keystone answered a login with a redirect, which is never followed (the request would
/// carry the key to wherever `Location` points). Loud, as a misconfiguration is: usually
/// `auth_url` says http:// where only https:// is served, or names an old path.
pub struct KeystoneRedirected<'a> {
    pub status: u16,
    /// Already escaped and bounded by the caller.
    pub location: &'a str,
}

impl InternalEvent for KeystoneRedirected<'_> {
    type Output = ();

    fn emit(self, _: &Ledger, limits: &LogLimits) {
        if let Some(suppressed) = limits.keystone_redirected.check() {
            tracing::error!(
                status = self.status,
                location = self.location,
                suppressed,
                "Keystone answered with a redirect, which is not followed: set auth_url to the final URL; data is kept"
            );
        }
    }
}
