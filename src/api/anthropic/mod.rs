//! The Anthropic-compatible dialect: `/v1/messages` and `/v1/messages/count_tokens`, translated
//! onto the provider-neutral chat service (`crate::chat`). The key arrives as `x-api-key` or a
//! bearer token; `anthropic-version` and `anthropic-beta` are accepted and not required.

pub mod events;
pub mod messages;
