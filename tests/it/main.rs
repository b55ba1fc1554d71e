//! The integration test binary: real servers on ephemeral ports, real HTTP, real processes.
//!
//! `harness` starts servers (in-process or the compiled binary) and runs the CLI; `browser`
//! drives headless Chromium over WebDriver for the console tests;
//! `mock_provider` is a scriptable LLM provider and `gateway` puts one behind a server. Every
//! other module is a group of tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod browser;
mod gateway;
mod harness;
mod mock_provider;

mod admin;
mod anthropic_messages;
mod auth;
mod backup;
mod budgets;
mod chat;
mod chat_durability;
mod cli;
mod config_dirs;
mod console;
mod console_pages;
mod conversations;
mod cors;
mod costs;
mod crash;
mod deploys;
mod hardening_agents;
mod hardening_auth;
mod hardening_net;
mod hardening_rag;
mod http_basics;
mod isolation;
mod mcp_client;
mod mcp_server;
mod memory;
mod migrations;
mod mock_provider_tests;
mod observability;
mod openai_chat;
mod openai_completions;
mod openai_embeddings;
mod openai_models;
mod openai_responses;
mod postgres_compat;
mod quotas;
mod rag;
mod rag_durability;
mod rag_jobs;
mod rate_limit;
mod reload;
mod research;
mod resilience;
mod runs;
mod sdk_clients;
mod streaming;
mod tenancy;
mod tools;
mod upgrades;
mod user_agents;
mod v1;
mod workflows;
