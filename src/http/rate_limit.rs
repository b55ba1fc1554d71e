//! Layer-1 rate limiting: a token bucket per client IP (API.md §0.6), on every route.
//!
//! governor's GCRA implementation does the arithmetic; the configured number is a true
//! per-second rate (the reference's builder call read it as seconds per token). Idle buckets
//! are swept periodically so a scan from many addresses cannot grow memory without bound.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

type Limiter = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

#[derive(Clone)]
pub struct IpRateLimiter {
    limiter: Arc<Limiter>,
}

impl IpRateLimiter {
    /// `None` when `per_second` is 0 (limiting disabled).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst.max(1))?;
        let quota = Quota::per_second(rate).allow_burst(burst);
        Some(IpRateLimiter { limiter: Arc::new(RateLimiter::keyed(quota)) })
    }

    /// `Ok` to proceed, or the whole seconds to wait (at least 1) before retrying.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        self.limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            whole.max(1)
        })
    }

    /// Drop buckets that have refilled completely; run every minute by the server.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Spawn the periodic sweep; it ends when the limiter is dropped everywhere else.
    pub fn spawn_sweeper(&self) {
        let weak = Arc::downgrade(&self.limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else { return };
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
    }
}
