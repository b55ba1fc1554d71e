//! Hard spending limits in dollars, on a tenant and on each of its API keys, exact under
//! concurrency.
//!
//! A request is admitted only if every budget that applies (its tenant's and its key's, monthly
//! and daily) still covers what the request may cost at most: its prompt at the input price
//! plus its `max_tokens` (or the model's default) at the output price. That estimate is
//! reserved under one lock, so 100 concurrent requests cannot all see the same remaining dollar;
//! when the request ends its actual cost replaces the reservation. A request can only exceed
//! its estimate by what the estimate cannot see (tool rounds, the router's pick), so a budget
//! is overshot by at most that, never by the concurrency.
//!
//! Spending is seeded from the cost rollups the first time a tenant or key is seen, and kept in
//! memory after; periods roll over in UTC like the quotas'.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::store::budgets::{self, BudgetRecord};
use crate::store::costs::{self, Period};
use crate::store::{Error, Store, api_keys, tenants};

use super::cost::usd_cents;
use super::periods::{day_start, month_start};

/// What a budget crossing reports: `percent` is 80 or 100.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetCrossing {
    pub tenant_id: String,
    /// `tenant 'acme'` or `API key 'ci'`.
    pub subject: String,
    pub period: &'static str,
    pub period_start: i64,
    pub spent_micros: u64,
    pub limit_micros: u64,
    pub percent: u8,
}

/// Where crossings go (the alert log).
pub type Crossings = Arc<dyn Fn(BudgetCrossing) + Send + Sync>;

/// Why a request was refused: the budget's own words, for the 402.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    pub message: String,
}

#[derive(Debug, Default)]
struct Account {
    /// `tenant 'acme'` or `API key 'ci'`, for messages.
    label: String,
    tenant_id: String,
    limits: BudgetRecord,
    month: i64,
    day: i64,
    spent_month: u64,
    spent_day: u64,
    /// Estimates of admitted requests still running.
    reserved: u64,
}

impl Account {
    fn roll(&mut self, now: i64) {
        if month_start(now) != self.month {
            self.month = month_start(now);
            self.spent_month = 0;
        }
        if day_start(now) != self.day {
            self.day = day_start(now);
            self.spent_day = 0;
        }
    }

    /// The smallest amount left under any limit, after what is reserved.
    fn remaining(&self) -> Option<u64> {
        let left = |limit: Option<u64>, spent: u64| limit.map(|l| l.saturating_sub(spent + self.reserved));
        match (left(self.limits.monthly_micros, self.spent_month), left(self.limits.daily_micros, self.spent_day)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Refuse `estimate` if a limit cannot take it.
    fn check(&self, estimate: u64) -> Result<(), Exceeded> {
        for (limit, spent, period) in [
            (self.limits.monthly_micros, self.spent_month, "this month"),
            (self.limits.daily_micros, self.spent_day, "today"),
        ] {
            if let Some(limit) = limit
                && spent + self.reserved + estimate > limit
            {
                let label = &self.label;
                let (spent, limit) = (usd_cents(spent.min(limit)), usd_cents(limit));
                return Err(Exceeded {
                    message: format!("Budget exceeded for {label}: ${spent} of ${limit} used {period}"),
                });
            }
        }
        Ok(())
    }
}

/// The budgets of every tenant and key seen since start, by budget subject.
pub struct BudgetMeter {
    accounts: Mutex<HashMap<String, Account>>,
    crossings: Option<Crossings>,
}

/// An admitted request's hold on its budgets, settled with its actual cost when it ends
/// ([`Reservation::settle`]); dropped unsettled, it releases the hold.
pub struct Reservation {
    meter: Arc<BudgetMeter>,
    subjects: Vec<String>,
    estimate: u64,
    /// The least left under any of its budgets once admitted (`X-Budget-Remaining-Usd`).
    pub remaining: Option<u64>,
    settled: bool,
}

impl BudgetMeter {
    pub fn new(crossings: Option<Crossings>) -> BudgetMeter {
        BudgetMeter { accounts: Mutex::new(HashMap::new()), crossings }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Account>> {
        self.accounts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Read a subject's budget and this period's spending the first time it is seen.
    /// `subjects`: the tenant's, then the key's if `key_id` is given ([`BudgetMeter::reserve`]).
    fn ensure_loaded(
        &self,
        store: &Store,
        tenant_id: &str,
        key_id: Option<&str>,
        subjects: &[String],
        now: i64,
    ) -> Result<(), Error> {
        let wanted: Vec<(&String, Option<&str>)> = {
            let accounts = self.lock();
            subjects.iter().zip([None, key_id]).filter(|(subject, _)| !accounts.contains_key(*subject)).collect()
        };
        for (subject, key) in wanted {
            let (month, day) = (month_start(now), day_start(now));
            let account = store.read_now(|txn| {
                let limits = budgets::get(txn, subject)?.unwrap_or_default();
                let (label, rollup) = match key {
                    None => {
                        let name = tenants::get(txn, tenant_id)?.map_or_else(|| tenant_id.to_string(), |t| t.name);
                        (format!("tenant '{name}'"), costs::TENANT.to_string())
                    }
                    Some(key) => {
                        let name = api_keys::by_id(txn, key)?.map_or_else(|| key.to_string(), |k| k.name);
                        (format!("API key '{name}'"), costs::key_subject(key))
                    }
                };
                let spent_month = costs::get(txn, tenant_id, &rollup, Period::Month, month)?.cost_micros;
                let spent_day = costs::get(txn, tenant_id, &rollup, Period::Day, day)?.cost_micros;
                Ok(Account {
                    label,
                    tenant_id: tenant_id.to_string(),
                    limits,
                    month,
                    day,
                    spent_month,
                    spent_day,
                    reserved: 0,
                })
            })?;
            // Another request may have loaded it meanwhile; the first one stays.
            self.lock().entry(subject.clone()).or_insert(account);
        }
        Ok(())
    }

    /// Admit a request of `tenant_id` through `key_id` that may cost up to `estimate`
    /// micro-dollars: reserve it under every budget that applies, or refuse.
    pub fn reserve(
        self: &Arc<Self>,
        store: &Store,
        tenant_id: &str,
        key_id: Option<&str>,
        estimate: u64,
        now: i64,
    ) -> Result<Reservation, BudgetError> {
        let mut subjects = Vec::with_capacity(2);
        subjects.push(budgets::tenant_subject(tenant_id));
        if let Some(key) = key_id {
            subjects.push(budgets::key_subject(key));
        }
        self.ensure_loaded(store, tenant_id, key_id, &subjects, now).map_err(BudgetError::Store)?;
        let mut accounts = self.lock();
        for subject in &subjects {
            if let Some(account) = accounts.get_mut(subject) {
                account.roll(now);
                account.check(estimate).map_err(BudgetError::Exceeded)?;
            }
        }
        let mut remaining: Option<u64> = None;
        for subject in &subjects {
            if let Some(account) = accounts.get_mut(subject) {
                account.reserved += estimate;
                if let Some(left) = account.remaining() {
                    remaining = Some(remaining.map_or(left, |r| r.min(left)));
                }
            }
        }
        Ok(Reservation { meter: self.clone(), subjects, estimate, remaining, settled: false })
    }

    /// The admin changed a budget: applies to the next request.
    pub fn set_limits(&self, subject: &str, limits: BudgetRecord) {
        if let Some(account) = self.lock().get_mut(subject) {
            account.limits = limits;
        }
    }

    fn settle(&self, subjects: &[String], estimate: u64, actual: Option<u64>, now: i64) {
        let mut crossings = Vec::new();
        {
            let mut accounts = self.lock();
            for subject in subjects {
                let Some(account) = accounts.get_mut(subject) else { continue };
                account.reserved = account.reserved.saturating_sub(estimate);
                let Some(actual) = actual else { continue };
                account.roll(now);
                let before = (account.spent_month, account.spent_day);
                account.spent_month += actual;
                account.spent_day += actual;
                for (limit, old, new, period, start) in [
                    (account.limits.monthly_micros, before.0, account.spent_month, "month", account.month),
                    (account.limits.daily_micros, before.1, account.spent_day, "day", account.day),
                ] {
                    let Some(limit) = limit.filter(|l| *l > 0) else { continue };
                    for percent in [80u8, 100] {
                        let mark = limit * u64::from(percent) / 100;
                        if old < mark && new >= mark {
                            crossings.push(BudgetCrossing {
                                tenant_id: account.tenant_id.clone(),
                                subject: account.label.clone(),
                                period,
                                period_start: start,
                                spent_micros: new,
                                limit_micros: limit,
                                percent,
                            });
                        }
                    }
                }
            }
        }
        if let Some(sink) = &self.crossings {
            crossings.into_iter().for_each(|c| sink(c));
        }
    }
}

/// Why a reservation was not made.
#[derive(Debug)]
pub enum BudgetError {
    Exceeded(Exceeded),
    Store(Error),
}

impl Reservation {
    /// What its budgets have left once the request has cost `spent` (its estimate was set aside
    /// at admission).
    pub fn remaining_after(&self, spent: u64) -> Option<u64> {
        self.remaining.map(|left| (left + self.estimate).saturating_sub(spent))
    }

    /// The request ended having cost `actual` micro-dollars.
    pub fn settle(mut self, actual: u64, now: i64) {
        self.settled = true;
        self.meter.settle(&self.subjects, self.estimate, Some(actual), now);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.meter.settle(&self.subjects, self.estimate, None, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(monthly: Option<u64>, daily: Option<u64>) -> Account {
        Account {
            label: "tenant 'acme'".into(),
            limits: BudgetRecord { monthly_micros: monthly, daily_micros: daily, updated_at: 0 },
            ..Account::default()
        }
    }

    #[test]
    fn a_request_is_admitted_only_while_every_limit_covers_its_estimate() {
        let mut a = account(Some(1_000_000), Some(300_000));
        assert!(a.check(300_000).is_ok());
        a.reserved = 200_000;
        let refused = a.check(100_001).expect_err("the day cannot take it");
        assert_eq!(refused.message, "Budget exceeded for tenant 'acme': $0.00 of $0.30 used today");
        let mut small = account(Some(600), None);
        small.spent_month = 520;
        let refused = small.check(100).expect_err("81 micro-dollars left");
        assert_eq!(refused.message, "Budget exceeded for tenant 'acme': $0.00052 of $0.0006 used this month");
        a.reserved = 0;
        a.spent_month = 1_000_000;
        let refused = a.check(1).expect_err("the month is spent");
        assert_eq!(refused.message, "Budget exceeded for tenant 'acme': $1.00 of $1.00 used this month");
        assert!(account(None, None).check(u64::MAX / 4).is_ok(), "no limits, no refusal");
    }

    #[test]
    fn periods_roll_over_in_utc() {
        let mut a = account(Some(10), Some(10));
        let jan31 = 1_769_817_600 + 86_399; // 2026-01-31T23:59:59Z
        a.roll(jan31);
        a.spent_day = 5;
        a.spent_month = 9;
        a.roll(jan31 + 1);
        assert_eq!((a.spent_day, a.spent_month), (0, 0), "a new day and a new month");
    }
}
