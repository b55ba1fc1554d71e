//! Usage events buffered in memory and committed in batches.
//!
//! Recording each metered request as its own write would put one commit (and fsync) behind
//! every request: measured, that halves the governed path's throughput at 32 concurrent
//! clients. Events are instead collected here and handed to the group-commit writer every
//! [`FLUSH_INTERVAL`] as one job, and on shutdown before the store closes. Quota checks never
//! read these (they use the in-memory meter), and a crash loses at most one interval of usage
//! bookkeeping, never an acknowledged client write.

use std::sync::Mutex;
use std::time::Duration;

use crate::store::usage::{self, UsageEventRecord};
use crate::store::user_usage::{self, UserUsageDelta};
use crate::store::{Error, Store};

/// How often buffered usage is committed.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Default)]
pub struct UsageRecorder {
    pending: Mutex<Vec<UsageEventRecord>>,
    /// JWT users' requests and tokens (`[quotas.users]`), committed with the tenants' events.
    pending_users: Mutex<Vec<UserUsageDelta>>,
}

impl UsageRecorder {
    pub fn push(&self, event: UsageEventRecord) {
        match self.pending.lock() {
            Ok(mut pending) => pending.push(event),
            Err(poisoned) => poisoned.into_inner().push(event),
        }
    }

    pub fn push_user(&self, delta: UserUsageDelta) {
        match self.pending_users.lock() {
            Ok(mut pending) => pending.push(delta),
            Err(poisoned) => poisoned.into_inner().push(delta),
        }
    }

    fn take(&self) -> (Vec<UsageEventRecord>, Vec<UserUsageDelta>) {
        let events = match self.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        let users = match self.pending_users.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        (events, users)
    }

    /// Queue what is buffered as one write job, without waiting.
    pub fn flush_detached(&self, store: &Store) {
        let (events, users) = self.take();
        if !events.is_empty() || !users.is_empty() {
            store.write_detached(move |txn| {
                usage::record_all(txn, &events)?;
                user_usage::record_all(txn, &users)
            });
        }
    }

    /// Commit what is buffered and everything queued before it; for reads that must see it.
    pub async fn flush(&self, store: &Store) -> Result<(), Error> {
        let (events, users) = self.take();
        if events.is_empty() && users.is_empty() {
            return store.flush().await;
        }
        store
            .write(move |txn| {
                usage::record_all(txn, &events)?;
                user_usage::record_all(txn, &users)
            })
            .await
    }
}
