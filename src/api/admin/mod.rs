//! `/api/admin/*` handlers (admin secret).

pub mod agents;
pub mod alerts;
pub mod api_keys;
pub mod audit;
pub mod backup;
pub mod budgets;
pub mod catalog;
pub mod deploy;
pub mod provision;
pub mod tenants;
pub mod usage;
