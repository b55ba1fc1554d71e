//! `GET /openapi.json`: an OpenAPI 3.1 document of every route, generated from the route table
//! (`routes::PATTERNS`, resolved under each method) and [`doc`], an exhaustive match: a route
//! added without its summary, auth and body does not compile, and one missing from
//! `PATTERNS` fails the route tests.

use std::sync::OnceLock;

use http::Method;
use serde_json::{Map, Value, json};

use super::routes::{self, AuthRequirement, Resolution, Route};

/// What a route takes as its body.
enum Body {
    None,
    /// A JSON object with these fields: name, JSON type, required.
    Json(&'static [(&'static str, &'static str, bool)]),
    /// A TOON agent document (text).
    Toon,
    /// A JSON body defined by the wire format it speaks (OpenAI or Anthropic), named here.
    Wire(&'static str),
}

const CHAT: &[(&str, &str, bool)] = &[
    ("message", "string", false),
    ("messages", "array", false),
    ("agent_type", "string", false),
    ("context_id", "string", false),
    ("model", "string", false),
];
const AGENT: &[(&str, &str, bool)] = &[
    ("name", "string", true),
    ("model", "string", true),
    ("system_prompt", "string", false),
    ("tools", "array", false),
    ("max_tool_iterations", "integer", false),
    ("parallel_tools", "boolean", false),
    ("description", "string", false),
    ("is_public", "boolean", false),
];
const TENANT_AGENT: &[(&str, &str, bool)] = &[
    ("name", "string", false),
    ("agent_name", "string", false),
    ("display_name", "string", false),
    ("description", "string", false),
    ("agent_type", "string", false),
    ("config", "object", false),
    ("enabled", "boolean", false),
];
const TENANT_AGENT_UPDATE: &[(&str, &str, bool)] = &[
    ("display_name", "string", false),
    ("description", "string", false),
    ("agent_type", "string", false),
    ("config", "object", false),
    ("enabled", "boolean", false),
];

/// A route's summary and body.
fn doc(route: &Route) -> (&'static str, Body) {
    use Body::*;
    match route {
        Route::Health => ("Liveness: `OK`", None),
        Route::Console { file: Option::None } => ("The console (web UI): its page", None),
        Route::Console { file: Some(_) } => ("The console (web UI): one of its scripts, styles or images", None),
        Route::OpenApi => ("This document", None),
        Route::Metrics => ("Prometheus metrics (admin secret, or public with [metrics] public)", None),
        Route::HealthDetailed => ("Health of the store, providers, search indexes and config reloads", None),
        Route::ConfigInfo => ("The running configuration's providers, models and agents, without secrets", None),
        Route::AuthRegister => (
            "Register a user",
            Json(&[("email", "string", true), ("password", "string", true), ("name", "string", false)]),
        ),
        Route::AuthLogin => {
            ("Log in: access and refresh tokens", Json(&[("email", "string", true), ("password", "string", true)]))
        }
        Route::AuthRefresh => ("Exchange a refresh token for new tokens", Json(&[("refresh_token", "string", true)])),
        Route::AuthLogout => ("End the session of a refresh token", Json(&[("refresh_token", "string", true)])),
        Route::ListPlatformAgents => ("The built-in and configured agents", None),
        Route::Chat => ("Chat as a user (an agent, the default agent or the router answers)", Json(CHAT)),
        Route::ChatStream => ("Chat as a user, streamed as Server-Sent Events", Json(CHAT)),
        Route::Research => (
            "Deep research: plan, answer sub-questions in parallel, synthesize",
            Json(&[("query", "string", true), ("depth", "integer", false), ("max_iterations", "integer", false)]),
        ),
        Route::GetMemory => ("What the server learned about the user", None),
        Route::ListWorkflows => ("Workflows", None),
        Route::RunWorkflow { .. } => {
            ("Run a workflow", Json(&[("query", "string", true), ("context", "object", false)]))
        }
        Route::ListUserAgents => ("The user's agents (and public ones)", None),
        Route::CreateUserAgent => ("Create a user agent", Json(AGENT)),
        Route::ImportUserAgent => ("Import a user agent from a TOON document", Toon),
        Route::GetUserAgent { .. } => ("One user agent (`?format=toon` for TOON)", None),
        Route::UpdateUserAgent { .. } => ("Update a user agent", Json(AGENT)),
        Route::DeleteUserAgent { .. } => ("Delete a user agent", None),
        Route::ExportUserAgent { .. } => ("A user agent as TOON", None),
        Route::ListConversations => ("The user's conversations", None),
        Route::GetConversation { .. } => ("One conversation with its messages", None),
        Route::RenameConversation { .. } => ("Rename a conversation", Json(&[("title", "string", true)])),
        Route::DeleteConversation { .. } => ("Delete a conversation", None),
        Route::RagIngest => (
            "Ingest a document into a collection (as a job, 202, with async or above [rag].async_above_bytes)",
            Json(&[
                ("collection", "string", true),
                ("content", "string", true),
                ("chunking_strategy", "string", false),
                ("metadata", "object", false),
                ("title", "string", false),
                ("source", "string", false),
                ("tags", "array", false),
                ("async", "boolean", false),
            ]),
        ),
        Route::RagSearch => (
            "Search a collection (semantic, bm25, fuzzy, hybrid)",
            Json(&[
                ("collection", "string", true),
                ("query", "string", true),
                ("strategy", "string", false),
                ("top_k", "integer", false),
                ("threshold", "number", false),
                ("rerank", "boolean", false),
            ]),
        ),
        Route::RagListCollections => ("The user's collections", None),
        Route::RagDeleteCollection => ("Delete a collection", Json(&[("collection", "string", true)])),
        Route::RagGetJob { .. } => ("An ingest job's state and progress", None),
        Route::RagCancelJob { .. } => ("Cancel an ingest job (what it wrote is rolled back)", None),
        Route::V1Chat => ("Chat as a tenant (governed: quotas, budgets, usage)", Json(CHAT)),
        Route::V1ChatStream => ("Chat as a tenant, streamed", Json(CHAT)),
        Route::V1ListAgents => ("The tenant's agents", None),
        Route::V1GetAgent { .. } => ("One of the tenant's agents", None),
        Route::V1RunAgent { .. } => ("Run one of the tenant's agents", Json(&[("input", "object", true)])),
        Route::V1ListAgentRuns { .. } => ("An agent's runs", None),
        Route::V1ListAgentLogs { .. } => ("An agent's logs", None),
        Route::V1GetUsage => ("The tenant's usage and spending this month", None),
        Route::V1ListRequests => ("The tenant's request log", None),
        Route::V1ListApiKeys => ("The tenant's API keys", None),
        Route::V1CreateApiKey => {
            ("Create an API key", Json(&[("name", "string", true), ("expires_in_days", "integer", false)]))
        }
        Route::V1RevokeApiKey { .. } => ("Revoke an API key", None),
        Route::OpenAiChatCompletions => ("OpenAI Chat Completions", Wire("OpenAI chat.completions request")),
        Route::OpenAiCompletions => ("OpenAI legacy Completions", Wire("OpenAI completions request")),
        Route::OpenAiResponses => ("OpenAI Responses", Wire("OpenAI responses request")),
        Route::OpenAiEmbeddings => ("OpenAI Embeddings", Wire("OpenAI embeddings request")),
        Route::OpenAiListModels => ("OpenAI model list: models, tiers and agent:<name>", None),
        Route::OpenAiGetModel { .. } => ("One model", None),
        Route::AnthropicMessages => ("Anthropic Messages", Wire("Anthropic messages request")),
        Route::AnthropicCountTokens => ("Anthropic token counting", Wire("Anthropic count_tokens request")),
        Route::Mcp => (
            "MCP over Streamable HTTP: agents, chat, RAG, research and the calculator as tools",
            Wire("MCP JSON-RPC message"),
        ),
        Route::AdminCreateUser => (
            "Create a user (when sign-up is closed)",
            Json(&[("email", "string", true), ("password", "string", true), ("name", "string", false)]),
        ),
        Route::AdminCreateTenant => ("Create a tenant", Json(&[("name", "string", true), ("tier", "string", true)])),
        Route::AdminListTenants => ("Tenants", None),
        Route::AdminGetTenant { .. } => ("One tenant with its totals and budget", None),
        Route::AdminUpdateQuota { .. } => ("Change a tenant's tier", Json(&[("tier", "string", true)])),
        Route::AdminSetTenantBudget { .. } => (
            "Set a tenant's dollar budget (null removes a limit)",
            Json(&[("monthly_usd", "number", false), ("daily_usd", "number", false)]),
        ),
        Route::AdminSetKeyBudget { .. } => (
            "Set an API key's dollar budget (null removes a limit)",
            Json(&[("monthly_usd", "number", false), ("daily_usd", "number", false)]),
        ),
        Route::AdminProvisionClient => (
            "Create a tenant with its agents and first API key",
            Json(&[
                ("name", "string", true),
                ("tier", "string", false),
                ("product_type", "string", false),
                ("api_key_name", "string", false),
            ]),
        ),
        Route::AdminCreateApiKey { .. } => ("Create an API key for a tenant", Json(&[("name", "string", true)])),
        Route::AdminRevokeApiKey { .. } => ("Revoke a tenant's API key: its next request is refused", None),
        Route::AdminListApiKeys { .. } => ("A tenant's API keys with their budgets", None),
        Route::AdminListTenantAgents { .. } => ("A tenant's agents", None),
        Route::AdminCreateTenantAgent { .. } => ("Create a tenant agent", Json(TENANT_AGENT)),
        Route::AdminUpdateTenantAgent { .. } => ("Update a tenant agent", Json(TENANT_AGENT_UPDATE)),
        Route::AdminDeleteTenantAgent { .. } => ("Delete a tenant agent", None),
        Route::AdminListAgentTemplates => ("Agent templates per product type", None),
        Route::AdminListModels => ("Configured models", None),
        Route::AdminListProviders => ("Providers and each deployment's circuit", None),
        Route::AdminTenantUsage { .. } => ("A tenant's usage and spending (`?month=YYYY-MM`)", None),
        Route::AdminTenantDailyUsage { .. } => ("A tenant's usage per day", None),
        Route::AdminAgentRuns { .. } => ("A tenant agent's runs", None),
        Route::AdminAgentStats { .. } => ("A tenant agent's statistics", None),
        Route::AdminListAllAgents => ("Every tenant's agents", None),
        Route::AdminStats => ("Platform statistics", None),
        Route::AdminListAlerts => ("Alerts (quotas, budgets)", None),
        Route::AdminResolveAlert { .. } => ("Resolve an alert", None),
        Route::AdminAuditLog => ("The audit log", None),
        Route::AdminStartDeploy => ("Start a configured deploy", Json(&[("target", "string", true)])),
        Route::AdminGetDeploy { .. } => ("One deploy with its output", None),
        Route::AdminListDeploys => ("The 20 most recent deploys, and the targets a deploy may name", None),
        Route::AdminDeployEvents { .. } => ("A deploy's output as Server-Sent Events", None),
        Route::AdminCancelDeploy { .. } => ("Cancel a running deploy", None),
        Route::AdminDeleteDeploy { .. } => ("Delete a finished deploy", None),
        Route::AdminListServices => ("Services, the server itself included", None),
        Route::AdminReloadConfig => ("Reload the configuration", None),
        Route::AdminServiceLogs { .. } => ("A service's recent log lines (`?lines=N`)", None),
        Route::AdminBackup => ("Write a backup", None),
        Route::AdminListRequests => {
            ("The request log, filtered (from, to, tenant_id, status, route, model, q, cursor)", None)
        }
        Route::AdminSpending => ("Every tenant's and model's spending (`?month=` or `?date=`)", None),
        Route::AdminMigrations => ("The database's schema migrations", None),
    }
}

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn build() -> Value {
    let mut paths = Map::new();
    for pattern in routes::PATTERNS {
        let concrete: String =
            pattern.split('/').map(|s| if s.starts_with('{') { "x" } else { s }).collect::<Vec<_>>().join("/");
        let mut item = Map::new();
        for method in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            if let Resolution::Found(route) = routes::resolve(&method, &concrete)
                && route.pattern() == *pattern
            {
                item.insert(method.as_str().to_ascii_lowercase(), operation(&route, pattern));
            }
        }
        paths.insert((*pattern).to_string(), Value::Object(item));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ARES, embedded",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The ARES agent-platform API. Every /v1/... path is also served under /api/v1/....",
        },
        "paths": paths,
        "components": { "securitySchemes": {
            "adminSecret": { "type": "apiKey", "in": "header", "name": "X-Admin-Secret" },
            "adminBearer": { "type": "http", "scheme": "bearer", "description": "The admin secret (what Prometheus' bearer_token sends)" },
            "userJwt": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
            "tenantKey": { "type": "http", "scheme": "bearer", "description": "An API key, ares_…" },
            "tenantKeyHeader": { "type": "apiKey", "in": "header", "name": "x-api-key" },
        }},
    })
}

fn operation(route: &Route, pattern: &str) -> Value {
    let (summary, body) = doc(route);
    let mut op =
        json!({ "summary": summary, "responses": { "default": { "description": "See the ARES API documentation" } } });
    let security = match route.auth() {
        AuthRequirement::None => json!([]),
        AuthRequirement::Admin => json!([{ "adminSecret": [] }]),
        AuthRequirement::Scraper => json!([{ "adminSecret": [] }, { "adminBearer": [] }]),
        AuthRequirement::Jwt => json!([{ "userJwt": [] }]),
        AuthRequirement::ApiKey => json!([{ "tenantKey": [] }, { "tenantKeyHeader": [] }]),
    };
    op["security"] = security;
    let parameters: Vec<Value> = pattern
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    match body {
        Body::None => {}
        Body::Json(fields) => {
            let properties: Map<String, Value> =
                fields.iter().map(|(name, kind, _)| ((*name).to_string(), json!({ "type": kind }))).collect();
            let required: Vec<&str> = fields.iter().filter(|(_, _, req)| *req).map(|(name, _, _)| *name).collect();
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": {
                "type": "object", "properties": properties, "required": required,
            }}}});
        }
        Body::Toon => {
            op["requestBody"] = json!({ "required": true, "content": { "text/plain": { "schema": { "type": "string", "description": "A TOON agent document" } } } });
        }
        Body::Wire(what) => {
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "type": "object", "description": what } } } });
        }
    }
    op
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pattern has at least one operation, and every operation has a summary and the
    /// security its route requires: a route the table serves but the document lacks fails here.
    #[test]
    fn the_document_has_every_route_of_the_table() {
        let document = build();
        let paths = document["paths"].as_object().expect("paths");
        assert_eq!(paths.len(), routes::PATTERNS.len());
        let mut operations = 0;
        for (pattern, item) in paths {
            let item = item.as_object().expect("a path item");
            assert!(!item.is_empty(), "{pattern} has no operation");
            for op in item.values() {
                assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{pattern}");
                assert!(op["security"].is_array(), "{pattern}");
                operations += 1;
            }
        }
        assert!(operations >= routes::PATTERNS.len());
        assert_eq!(document["paths"]["/api/conversations/{id}"]["delete"]["parameters"][0]["name"], "id");
        assert_eq!(
            document["paths"]["/api/auth/login"]["post"]["requestBody"]["content"]["application/json"]["schema"]["required"],
            json!(["email", "password"])
        );
        assert_eq!(document["paths"]["/api/admin/tenants"]["post"]["security"], json!([{ "adminSecret": [] }]));
    }
}
