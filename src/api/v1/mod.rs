//! `/v1/*` handlers (tenant API key; also served under `/api/v1/*`). Every store call is scoped
//! to the key's tenant: another tenant's resources are 404, never 403.

pub mod agents;
pub mod api_keys;
pub mod runs;
pub mod usage;

use serde::Deserialize;

use crate::error::ApiError;

/// `?page&per_page`, validated (API.md §1.10).
#[derive(Default, Deserialize)]
pub struct PageQuery {
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

impl PageQuery {
    /// (page ≥ 1, 1 ≤ per_page ≤ 100) with the given default page size.
    pub fn resolve(&self, default_per_page: u64) -> Result<(u64, u64), ApiError> {
        let page = self.page.unwrap_or(1).max(1);
        let per_page = self.per_page.unwrap_or(default_per_page).clamp(1, 100);
        Ok((page, per_page))
    }
}

pub fn total_pages(total: u64, per_page: u64) -> u64 {
    total.div_ceil(per_page.max(1))
}
