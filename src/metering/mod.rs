//! Tenancy tiers and, later, quota checks and usage recording (API.md §4).

mod tier;

pub use tier::TenantTier;
