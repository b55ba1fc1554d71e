//! `/api/admin/*` handlers (admin secret).

pub mod audit;
pub mod tenants;
