//! The LLM gateway: provider-neutral types, each provider's wire format (pure functions), the
//! HTTP transport, the model registry, the router (deployments, retries, fallbacks, circuit
//! breakers) and the tool-call coordinator. Only this module knows provider wire formats.

pub mod coordinator;
pub mod error;
pub mod health;
pub mod provider;
pub mod registry;
pub mod router;
pub mod types;
pub mod upstream;
pub mod wire;

pub use error::LlmError;
pub use registry::{ModelEntry, Registry};
