//! Agents as data: the built-in platform agents and product templates, agent specs from every
//! source, and how a request's agent is chosen.

pub mod builtin;
pub mod catalog;
pub mod resolve;
pub mod spec;
pub mod templates;

pub use catalog::Catalog;
pub use spec::{AgentSource, AgentSpec};
