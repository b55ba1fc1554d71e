//! Which sessions an access token may still speak for: access tokens carry their session's id
//! (`sid`), and a logged-out session's tokens are refused from then on.
//!
//! The store is the truth (`session_ids`: present = live). This cache keeps the answer per
//! session id so the access-token check reads the disk once per session per process, not once
//! per request. A "revoked" answer never changes (session ids are never reused); a "live"
//! answer changes only by a logout in this process, which overwrites it. Dropping entries is
//! always safe (the next request re-reads the store), which is how the cache stays bounded.

use std::collections::HashMap;
use std::sync::Mutex;

/// Entries kept before the cache starts over (~100 bytes each).
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct SessionCache {
    /// Session id → the user it belongs to while live, `None` once logged out.
    known: Mutex<HashMap<String, Option<String>>>,
}

impl SessionCache {
    /// `Some(live owner)` / `Some(None)` (revoked) when known, `None` when the store must say.
    pub fn lookup(&self, session_id: &str) -> Option<Option<String>> {
        self.known.lock().ok()?.get(session_id).cloned()
    }

    /// What the store said. A live answer never replaces a revocation noted meanwhile (a logout
    /// that raced with the read).
    pub fn note_store_answer(&self, session_id: &str, owner: Option<String>) {
        if let Ok(mut known) = self.known.lock() {
            if known.len() >= MAX_ENTRIES {
                known.clear();
            }
            known.entry(session_id.to_string()).or_insert(owner);
        }
    }

    /// A logout: the session's access tokens are refused from now on.
    pub fn revoke(&self, session_id: &str) {
        let mut known = match self.known.lock() {
            Ok(known) => known,
            Err(poisoned) => poisoned.into_inner(),
        };
        if known.len() >= MAX_ENTRIES {
            known.clear();
        }
        known.insert(session_id.to_string(), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_wins_over_a_racing_live_answer() {
        let cache = SessionCache::default();
        assert_eq!(cache.lookup("s"), None);
        cache.revoke("s");
        cache.note_store_answer("s", Some("u".into()));
        assert_eq!(cache.lookup("s"), Some(None));
        cache.note_store_answer("t", Some("u".into()));
        assert_eq!(cache.lookup("t"), Some(Some("u".into())));
        cache.revoke("t");
        assert_eq!(cache.lookup("t"), Some(None));
    }
}
