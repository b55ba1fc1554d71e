//! Tenancy tiers, quotas and usage metering (API.md §4).

pub mod budget;
pub mod cost;
pub mod meter;
pub mod periods;
pub mod recorder;
mod tier;

pub use meter::{Crossing, Exceeded, Meter, StoredUsage, UsageSnapshot};
pub use tier::TenantTier;
