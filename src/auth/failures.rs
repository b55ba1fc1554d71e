//! Failed admin-secret and API-key attempts, at WARN so an operator sees someone guessing —
//! but at most one line per client address per minute, so a guessing loop cannot flood the
//! log. The first failure after a quiet minute is logged with how many were left out before it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// Addresses remembered at most; beyond it, windows that are over are forgotten.
const MAX_ADDRESSES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    AdminSecret,
    ApiKey,
}

impl Attempt {
    fn as_str(self) -> &'static str {
        match self {
            Attempt::AdminSecret => "admin secret",
            Attempt::ApiKey => "API key",
        }
    }
}

struct Window {
    started: Instant,
    /// Failures in this window not logged.
    left_out: u64,
}

#[derive(Default)]
pub struct FailedAttempts {
    windows: Mutex<HashMap<IpAddr, Window>>,
}

impl FailedAttempts {
    pub fn note(&self, client_ip: IpAddr, attempt: Attempt, path: &str) {
        if let Some(left_out) = self.due(client_ip, Instant::now()) {
            tracing::warn!(
                %client_ip, path, earlier_failures_not_logged = left_out,
                "failed authentication: wrong {}", attempt.as_str()
            );
        }
    }

    /// `Some(failures left out since the last line)` when this failure is to be logged.
    fn due(&self, client_ip: IpAddr, now: Instant) -> Option<u64> {
        let Ok(mut windows) = self.windows.lock() else { return None };
        if windows.len() >= MAX_ADDRESSES {
            windows.retain(|_, w| now.duration_since(w.started) < WINDOW);
        }
        let full = windows.len() >= MAX_ADDRESSES;
        match windows.get_mut(&client_ip) {
            Some(window) if now.duration_since(window.started) < WINDOW => {
                window.left_out += 1;
                None
            }
            Some(window) => {
                let left_out = window.left_out;
                *window = Window { started: now, left_out: 0 };
                Some(left_out)
            }
            // More addresses guessing within a minute than we remember: stay bounded, log
            // nothing more for new ones until windows end.
            None if full => None,
            None => {
                windows.insert(client_ip, Window { started: now, left_out: 0 });
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_address_per_minute_then_the_count_left_out() {
        let failures = FailedAttempts::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let start = Instant::now();
        assert_eq!(failures.due(a, start), Some(0));
        for i in 1..=5 {
            assert_eq!(failures.due(a, start + Duration::from_secs(i)), None, "within the minute");
        }
        assert_eq!(failures.due(b, start + Duration::from_secs(2)), Some(0), "another address has its own minute");
        assert_eq!(failures.due(a, start + WINDOW + Duration::from_secs(1)), Some(5));
        assert_eq!(failures.due(a, start + WINDOW + Duration::from_secs(2)), None);
    }

    #[test]
    fn the_addresses_remembered_stay_bounded_under_a_flood() {
        let failures = FailedAttempts::default();
        let start = Instant::now();
        let address = |i: usize| IpAddr::from(std::net::Ipv4Addr::from(u32::try_from(i).unwrap()));
        for i in 0..MAX_ADDRESSES + 50 {
            failures.due(address(i), start);
        }
        assert_eq!(failures.windows.lock().unwrap().len(), MAX_ADDRESSES);
        // A minute later the ended windows are forgotten and new addresses are logged again.
        assert_eq!(failures.due(address(MAX_ADDRESSES + 100), start + WINDOW), Some(0));
        assert_eq!(failures.windows.lock().unwrap().len(), 1);
    }
}
