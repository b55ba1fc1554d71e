//! Quotas on the request path: reserve before the handler, settle after (API.md §4.3).
//!
//! Counters live in memory, one entry per tenant for the current UTC month and day, so a quota
//! check is a map lookup under a short lock. An entry is loaded from the store once per
//! process (two point reads) and rolls over to zero when its period ends. Every request is
//! counted at reservation (so concurrent requests cannot overshoot a limit); its tokens are
//! added at settlement, which also queues the durable usage event for the group-commit writer.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::{QuotaConfig, TierLimits};
use crate::metering::TenantTier;
use crate::metering::periods::{day_start, month_start, next_day_start, next_month_start};

/// Which limit refused a request, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    MonthlyRequests,
    DailyRequests,
    MonthlyTokens,
}

impl Exceeded {
    /// The limit, as `ares_quota_rejections_total{reason}` names it.
    pub fn reason(self) -> &'static str {
        match self {
            Exceeded::MonthlyRequests => "monthly_requests",
            Exceeded::DailyRequests => "daily_requests",
            Exceeded::MonthlyTokens => "monthly_tokens",
        }
    }

    /// The documented 429 texts (API.md §4.3).
    pub fn message(self) -> &'static str {
        match self {
            Exceeded::MonthlyRequests => "Monthly request quota exceeded",
            Exceeded::DailyRequests => "Daily request limit reached for your tier",
            Exceeded::MonthlyTokens => "Monthly token quota exceeded",
        }
    }

    /// Seconds until the limit resets: next UTC midnight or next month start.
    pub fn retry_after(self, now: i64) -> u64 {
        let reset = match self {
            Exceeded::DailyRequests => next_day_start(now),
            Exceeded::MonthlyRequests | Exceeded::MonthlyTokens => next_month_start(now),
        };
        u64::try_from(reset - now).unwrap_or(1).max(1)
    }
}

/// A tenant's usage in the current periods, as seen by one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageSnapshot {
    pub limits: TierLimits,
    pub now: i64,
    pub monthly_requests: u64,
    pub monthly_tokens: u64,
    pub daily_requests: u64,
}

impl UsageSnapshot {
    /// The rate-limit and quota headers; unlimited dimensions are omitted.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(limit) = self.limits.daily_requests.value() {
            out.push(("x-ratelimit-limit", limit.to_string()));
            out.push(("x-ratelimit-remaining", limit.saturating_sub(self.daily_requests).to_string()));
            out.push(("x-ratelimit-reset", crate::clock::rfc3339(next_day_start(self.now))));
        }
        if let Some(limit) = self.limits.monthly_tokens.value() {
            out.push(("x-quota-tokens-remaining", limit.saturating_sub(self.monthly_tokens).to_string()));
        }
        if let Some(limit) = self.limits.monthly_requests.value() {
            out.push(("x-quota-requests-limit", limit.to_string()));
            out.push(("x-quota-requests-remaining", limit.saturating_sub(self.monthly_requests).to_string()));
            out.push(("x-quota-reset", crate::clock::rfc3339(next_month_start(self.now))));
        }
        out
    }
}

/// A limit crossed by this request: 80 % (warning) or 100 % (critical) of a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossing {
    pub dimension: &'static str,
    pub percent: u8,
    pub used: u64,
    pub limit: u64,
    pub period_start: i64,
}

/// Durable counters as loaded from the store for the current periods.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoredUsage {
    pub monthly_requests: u64,
    pub monthly_tokens: u64,
    pub daily_requests: u64,
}

#[derive(Debug, Clone, Copy)]
struct Counters {
    month_start: i64,
    day_start: i64,
    monthly_requests: u64,
    monthly_tokens: u64,
    daily_requests: u64,
}

impl Counters {
    fn roll(&mut self, now: i64) {
        if month_start(now) != self.month_start {
            self.month_start = month_start(now);
            self.monthly_requests = 0;
            self.monthly_tokens = 0;
        }
        if day_start(now) != self.day_start {
            self.day_start = day_start(now);
            self.daily_requests = 0;
        }
    }
}

pub struct Meter {
    quotas: QuotaConfig,
    counters: Mutex<HashMap<String, Counters>>,
}

impl Meter {
    pub fn new(quotas: QuotaConfig) -> Self {
        Meter { quotas, counters: Mutex::new(HashMap::new()) }
    }

    pub fn limits(&self, tier: TenantTier) -> TierLimits {
        match tier {
            TenantTier::Free => self.quotas.free,
            TenantTier::Dev => self.quotas.dev,
            TenantTier::Pro => self.quotas.pro,
            TenantTier::Enterprise => self.quotas.enterprise,
        }
    }

    /// Whether this tenant's counters are in memory (else the caller loads them first).
    pub fn is_loaded(&self, tenant_id: &str) -> bool {
        self.counters.lock().is_ok_and(|map| map.contains_key(tenant_id))
    }

    /// Seed a tenant's counters from the store unless another request already did.
    pub fn load(&self, tenant_id: &str, stored: StoredUsage, now: i64) {
        if let Ok(mut map) = self.counters.lock() {
            map.entry(tenant_id.to_string()).or_insert(Counters {
                month_start: month_start(now),
                day_start: day_start(now),
                monthly_requests: stored.monthly_requests,
                monthly_tokens: stored.monthly_tokens,
                daily_requests: stored.daily_requests,
            });
        }
    }

    /// Check the quotas in the documented order and, if none is exhausted, count the request.
    /// The snapshot is returned either way, for the response headers.
    pub fn reserve(
        &self,
        tenant_id: &str,
        tier: TenantTier,
        now: i64,
    ) -> (Result<Vec<Crossing>, Exceeded>, UsageSnapshot) {
        self.reserve_within(tenant_id, self.limits(tier), now)
    }

    /// [`Meter::reserve`] against explicit limits (a JWT user's `[quotas.users]`).
    pub fn reserve_within(
        &self,
        tenant_id: &str,
        limits: TierLimits,
        now: i64,
    ) -> (Result<Vec<Crossing>, Exceeded>, UsageSnapshot) {
        let mut map = match self.counters.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        let counters = map.entry(tenant_id.to_string()).or_insert(Counters {
            month_start: month_start(now),
            day_start: day_start(now),
            monthly_requests: 0,
            monthly_tokens: 0,
            daily_requests: 0,
        });
        counters.roll(now);
        let exhausted = |used: u64, limit: crate::config::Limit| limit.value().is_some_and(|l| used >= l);
        let verdict = if exhausted(counters.monthly_requests, limits.monthly_requests) {
            Err(Exceeded::MonthlyRequests)
        } else if exhausted(counters.daily_requests, limits.daily_requests) {
            Err(Exceeded::DailyRequests)
        } else if exhausted(counters.monthly_tokens, limits.monthly_tokens) {
            Err(Exceeded::MonthlyTokens)
        } else {
            let mut crossings = Vec::new();
            crossed(
                "monthly_requests",
                counters.monthly_requests,
                1,
                limits.monthly_requests.value(),
                counters.month_start,
                &mut crossings,
            );
            crossed(
                "daily_requests",
                counters.daily_requests,
                1,
                limits.daily_requests.value(),
                counters.day_start,
                &mut crossings,
            );
            counters.monthly_requests += 1;
            counters.daily_requests += 1;
            Ok(crossings)
        };
        let snapshot = UsageSnapshot {
            limits,
            now,
            monthly_requests: counters.monthly_requests,
            monthly_tokens: counters.monthly_tokens,
            daily_requests: counters.daily_requests,
        };
        (verdict, snapshot)
    }

    /// Add a finished request's tokens; returns token-quota crossings.
    pub fn settle(&self, tenant_id: &str, tier: TenantTier, tokens: u64, now: i64) -> Vec<Crossing> {
        self.settle_within(tenant_id, self.limits(tier), tokens, now)
    }

    /// [`Meter::settle`] against explicit limits.
    pub fn settle_within(&self, tenant_id: &str, limits: TierLimits, tokens: u64, now: i64) -> Vec<Crossing> {
        let mut crossings = Vec::new();
        if tokens == 0 {
            return crossings;
        }
        let limit = limits.monthly_tokens.value();
        let mut map = match self.counters.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(counters) = map.get_mut(tenant_id) {
            counters.roll(now);
            crossed("monthly_tokens", counters.monthly_tokens, tokens, limit, counters.month_start, &mut crossings);
            counters.monthly_tokens += tokens;
        }
        crossings
    }
}

/// Record each of 80 % and 100 % of `limit` that `used → used + added` passes.
fn crossed(
    dimension: &'static str,
    used: u64,
    added: u64,
    limit: Option<u64>,
    period_start: i64,
    out: &mut Vec<Crossing>,
) {
    let Some(limit) = limit.filter(|l| *l > 0) else { return };
    for percent in [80u8, 100] {
        let threshold = (limit * u64::from(percent)).div_ceil(100);
        if used < threshold && used + added >= threshold {
            out.push(Crossing { dimension, percent, used: used + added, limit, period_start });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limit;

    const NOW: i64 = 1_773_411_720; // 2026-03-13T14:22:00Z

    fn meter(monthly: u64, daily: u64, tokens: u64) -> Meter {
        let limits = TierLimits {
            monthly_requests: Limit::Limited(monthly),
            monthly_tokens: Limit::Limited(tokens),
            daily_requests: Limit::Limited(daily),
        };
        Meter::new(QuotaConfig { free: limits, ..QuotaConfig::default() })
    }

    #[test]
    fn checks_in_order_and_counts_only_admitted_requests() {
        let m = meter(10, 3, 100);
        for expected_daily in 1..=3 {
            let (verdict, snapshot) = m.reserve("t", TenantTier::Free, NOW);
            assert!(verdict.is_ok());
            assert_eq!(snapshot.daily_requests, expected_daily);
        }
        let (verdict, snapshot) = m.reserve("t", TenantTier::Free, NOW);
        assert_eq!(verdict, Err(Exceeded::DailyRequests));
        assert_eq!(snapshot.daily_requests, 3);
        // Next day: the daily counter resets, the monthly one does not.
        let (verdict, snapshot) = m.reserve("t", TenantTier::Free, NOW + 86_400);
        assert!(verdict.is_ok());
        assert_eq!((snapshot.daily_requests, snapshot.monthly_requests), (1, 4));
    }

    #[test]
    fn monthly_requests_are_checked_before_daily_and_tokens_last() {
        let m = meter(1, 1, 10);
        assert!(m.reserve("t", TenantTier::Free, NOW).0.is_ok());
        assert_eq!(m.reserve("t", TenantTier::Free, NOW).0, Err(Exceeded::MonthlyRequests));
        let m = meter(100, 100, 10);
        assert!(m.reserve("t", TenantTier::Free, NOW).0.is_ok());
        m.settle("t", TenantTier::Free, 10, NOW);
        assert_eq!(m.reserve("t", TenantTier::Free, NOW).0, Err(Exceeded::MonthlyTokens));
    }

    #[test]
    fn unlimited_tiers_never_refuse_and_send_no_headers() {
        let m = Meter::new(QuotaConfig::default());
        for _ in 0..1000 {
            assert!(m.reserve("t", TenantTier::Enterprise, NOW).0.is_ok());
        }
        let (_, snapshot) = m.reserve("t", TenantTier::Enterprise, NOW);
        assert!(snapshot.headers().is_empty());
    }

    #[test]
    fn headers_count_this_request_and_name_the_reset_instants() {
        let m = meter(1000, 100, 100_000);
        let (_, snapshot) = m.reserve("t", TenantTier::Free, NOW);
        let headers: HashMap<_, _> = snapshot.headers().into_iter().collect();
        assert_eq!(headers["x-ratelimit-limit"], "100");
        assert_eq!(headers["x-ratelimit-remaining"], "99");
        assert_eq!(headers["x-ratelimit-reset"], "2026-03-14T00:00:00Z");
        assert_eq!(headers["x-quota-tokens-remaining"], "100000");
        assert_eq!(headers["x-quota-reset"], "2026-04-01T00:00:00Z");
    }

    #[test]
    fn crossings_are_reported_once_at_80_and_100_percent() {
        let m = meter(1000, 10, 100);
        let mut seen = Vec::new();
        for _ in 0..10 {
            let (verdict, _) = m.reserve("t", TenantTier::Free, NOW);
            seen.extend(
                verdict.unwrap().into_iter().filter(|c| c.dimension == "daily_requests").map(|c| (c.percent, c.used)),
            );
        }
        assert_eq!(seen, [(80, 8), (100, 10)]);
        let tokens = m.settle("t", TenantTier::Free, 150, NOW);
        assert_eq!(tokens.iter().map(|c| c.percent).collect::<Vec<_>>(), [80, 100]);
    }

    #[test]
    fn loaded_counters_are_respected() {
        let m = meter(1000, 5, 100);
        m.load("t", StoredUsage { monthly_requests: 7, monthly_tokens: 3, daily_requests: 5 }, NOW);
        assert_eq!(m.reserve("t", TenantTier::Free, NOW).0, Err(Exceeded::DailyRequests));
        assert_eq!(Exceeded::DailyRequests.retry_after(NOW), 86_400 - (NOW % 86_400) as u64);
    }
}
