//! The LLM gateway: provider-neutral types, each provider's wire format (pure functions), the
//! HTTP transport (ureq on the blocking pool), the model registry and the tool-call
//! coordinator. Only this module knows provider wire formats.

pub mod coordinator;
pub mod error;
pub mod provider;
pub mod registry;
pub mod types;
pub mod wire;

pub use error::LlmError;
pub use registry::{ModelEntry, Registry};
