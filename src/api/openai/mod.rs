//! The OpenAI-compatible dialect: `/v1/chat/completions`, `/v1/completions`, `/v1/responses`,
//! `/v1/embeddings` and `/v1/models`, translated onto the provider-neutral chat service
//! (`crate::chat`) and the embedders. Same API keys and governance as the rest of `/v1`;
//! errors and streams in OpenAI's own shapes (`routes::dialect_of_path`).

pub mod chat;
pub mod completions;
pub mod embeddings;
pub mod models;
pub mod responses;
