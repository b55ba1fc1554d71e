//! The route table: every endpoint of the API, the auth it requires and its body limit.
//!
//! [`resolve`] is a pure function from (method, path) to a [`Route`]; [`Route::auth`] is an
//! exhaustive match, so adding a variant does not compile until its auth is decided. The V1
//! API answers under `/v1/...` and, identically, under `/api/v1/...` (API.md G1). Paths are
//! case-sensitive and a trailing slash is a different path (API.md §0.1).

use http::Method;
use percent_encoding::percent_decode_str;

use crate::config::{Config, EmbedderKind};
use crate::error::Dialect;

pub use crate::auth::AuthRequirement;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    // Health and meta
    Health,
    /// The console's page (`file: None`, at `/`) or one of its files (`/console/{file}`).
    Console {
        file: Option<String>,
    },
    /// The OpenAPI 3.1 document of every route.
    OpenApi,
    HealthDetailed,
    ConfigInfo,
    // Users
    AuthRegister,
    AuthLogin,
    AuthRefresh,
    AuthLogout,
    ListPlatformAgents,
    // Chat, research, memory, workflows
    Chat,
    ChatStream,
    Research,
    GetMemory,
    ListWorkflows,
    RunWorkflow {
        workflow: String,
    },
    // User agents
    ListUserAgents,
    CreateUserAgent,
    ImportUserAgent,
    GetUserAgent {
        name: String,
    },
    UpdateUserAgent {
        name: String,
    },
    DeleteUserAgent {
        name: String,
    },
    ExportUserAgent {
        name: String,
    },
    // Conversations
    ListConversations,
    GetConversation {
        id: String,
    },
    RenameConversation {
        id: String,
    },
    DeleteConversation {
        id: String,
    },
    // RAG
    RagIngest,
    RagSearch,
    RagListCollections,
    RagDeleteCollection,
    RagGetJob {
        id: String,
    },
    RagCancelJob {
        id: String,
    },
    // V1 client API
    V1Chat,
    V1ChatStream,
    V1ListAgents,
    V1GetAgent {
        name: String,
    },
    V1RunAgent {
        name: String,
    },
    V1ListAgentRuns {
        name: String,
    },
    V1ListAgentLogs {
        name: String,
    },
    V1GetUsage,
    /// The caller tenant's own request log.
    V1ListRequests,
    V1ListApiKeys,
    V1CreateApiKey,
    V1RevokeApiKey {
        id: String,
    },
    // The OpenAI-compatible dialect (same keys and governance as V1)
    OpenAiChatCompletions,
    OpenAiCompletions,
    OpenAiResponses,
    OpenAiEmbeddings,
    OpenAiListModels,
    OpenAiGetModel {
        id: String,
    },
    // The Anthropic-compatible dialect
    AnthropicMessages,
    AnthropicCountTokens,
    // ARES as an MCP server (Streamable HTTP)
    Mcp,
    // Admin: users (when sign-up is closed)
    AdminCreateUser,
    // Admin: tenants, keys, agents, analytics, audit
    AdminCreateTenant,
    AdminListTenants,
    AdminGetTenant {
        tenant_id: String,
    },
    AdminUpdateQuota {
        tenant_id: String,
    },
    AdminSetTenantBudget {
        tenant_id: String,
    },
    AdminSetKeyBudget {
        tenant_id: String,
        key_id: String,
    },
    AdminProvisionClient,
    AdminCreateApiKey {
        tenant_id: String,
    },
    AdminRevokeApiKey {
        tenant_id: String,
        key_id: String,
    },
    AdminListApiKeys {
        tenant_id: String,
    },
    AdminListTenantAgents {
        tenant_id: String,
    },
    AdminCreateTenantAgent {
        tenant_id: String,
    },
    AdminUpdateTenantAgent {
        tenant_id: String,
        agent_name: String,
    },
    AdminDeleteTenantAgent {
        tenant_id: String,
        agent_name: String,
    },
    AdminListAgentTemplates,
    AdminListModels,
    AdminListProviders,
    AdminTenantUsage {
        tenant_id: String,
    },
    AdminTenantDailyUsage {
        tenant_id: String,
    },
    AdminAgentRuns {
        tenant_id: String,
        agent_name: String,
    },
    AdminAgentStats {
        tenant_id: String,
        agent_name: String,
    },
    AdminListAllAgents,
    AdminStats,
    AdminListAlerts,
    AdminResolveAlert {
        alert_id: String,
    },
    AdminAuditLog,
    // Admin: deployments, services, backups
    AdminStartDeploy,
    AdminGetDeploy {
        deploy_id: String,
    },
    AdminListDeploys,
    AdminDeployEvents {
        deploy_id: String,
    },
    AdminCancelDeploy {
        deploy_id: String,
    },
    AdminDeleteDeploy {
        deploy_id: String,
    },
    AdminListServices,
    AdminReloadConfig,
    AdminServiceLogs {
        service_name: String,
    },
    AdminBackup,
    /// What tenants spent, per tenant and model, in a month or day.
    AdminSpending,
    /// The database's schema migrations (what `ares migrate status` shows while serving).
    AdminMigrations,
    /// The request log, searchable.
    AdminListRequests,
    /// Prometheus metrics (admin secret, or public with `[metrics] public`).
    Metrics,
}

impl Route {
    /// The route-table pattern (`/api/conversations/{id}`): what logs (and metrics) name a
    /// request by, never the raw path, whose ids would make every request its own series. The
    /// V1 API is named by its `/v1/...` form also when called under `/api/v1/...`.
    pub fn pattern(&self) -> &'static str {
        match self {
            Route::Health => "/health",
            Route::Console { file: None } => "/",
            Route::Console { file: Some(_) } => "/console/{file}",
            Route::OpenApi => "/openapi.json",
            Route::Metrics => "/metrics",
            Route::HealthDetailed => "/health/detailed",
            Route::ConfigInfo => "/config/info",
            Route::AuthRegister => "/api/auth/register",
            Route::AuthLogin => "/api/auth/login",
            Route::AuthRefresh => "/api/auth/refresh",
            Route::AuthLogout => "/api/auth/logout",
            Route::ListPlatformAgents => "/api/agents",
            Route::Chat => "/api/chat",
            Route::ChatStream => "/api/chat/stream",
            Route::Research => "/api/research",
            Route::GetMemory => "/api/memory",
            Route::ListWorkflows => "/api/workflows",
            Route::RunWorkflow { .. } => "/api/workflows/{workflow}",
            Route::ListUserAgents | Route::CreateUserAgent => "/api/user/agents",
            Route::ImportUserAgent => "/api/user/agents/import",
            Route::GetUserAgent { .. } | Route::UpdateUserAgent { .. } | Route::DeleteUserAgent { .. } => {
                "/api/user/agents/{name}"
            }
            Route::ExportUserAgent { .. } => "/api/user/agents/{name}/export",
            Route::ListConversations => "/api/conversations",
            Route::GetConversation { .. } | Route::RenameConversation { .. } | Route::DeleteConversation { .. } => {
                "/api/conversations/{id}"
            }
            Route::RagIngest => "/api/rag/ingest",
            Route::RagSearch => "/api/rag/search",
            Route::RagListCollections => "/api/rag/collections",
            Route::RagDeleteCollection => "/api/rag/collection",
            Route::RagGetJob { .. } | Route::RagCancelJob { .. } => "/api/rag/jobs/{id}",
            Route::V1Chat => "/v1/chat",
            Route::V1ChatStream => "/v1/chat/stream",
            Route::V1ListAgents => "/v1/agents",
            Route::V1GetAgent { .. } => "/v1/agents/{name}",
            Route::V1RunAgent { .. } => "/v1/agents/{name}/run",
            Route::V1ListAgentRuns { .. } => "/v1/agents/{name}/runs",
            Route::V1ListAgentLogs { .. } => "/v1/agents/{name}/logs",
            Route::V1GetUsage => "/v1/usage",
            Route::V1ListRequests => "/v1/requests",
            Route::V1ListApiKeys | Route::V1CreateApiKey => "/v1/api-keys",
            Route::V1RevokeApiKey { .. } => "/v1/api-keys/{id}",
            Route::OpenAiChatCompletions => "/v1/chat/completions",
            Route::OpenAiCompletions => "/v1/completions",
            Route::OpenAiResponses => "/v1/responses",
            Route::OpenAiEmbeddings => "/v1/embeddings",
            Route::OpenAiListModels => "/v1/models",
            Route::OpenAiGetModel { .. } => "/v1/models/{id}",
            Route::AnthropicMessages => "/v1/messages",
            Route::AnthropicCountTokens => "/v1/messages/count_tokens",
            Route::Mcp => "/mcp",
            Route::AdminCreateUser => "/api/admin/users",
            Route::AdminCreateTenant | Route::AdminListTenants => "/api/admin/tenants",
            Route::AdminGetTenant { .. } => "/api/admin/tenants/{tenant_id}",
            Route::AdminUpdateQuota { .. } => "/api/admin/tenants/{tenant_id}/quota",
            Route::AdminSetTenantBudget { .. } => "/api/admin/tenants/{tenant_id}/budget",
            Route::AdminSetKeyBudget { .. } => "/api/admin/tenants/{tenant_id}/api-keys/{key_id}/budget",
            Route::AdminProvisionClient => "/api/admin/provision-client",
            Route::AdminRevokeApiKey { .. } => "/api/admin/tenants/{tenant_id}/api-keys/{key_id}",
            Route::AdminCreateApiKey { .. } | Route::AdminListApiKeys { .. } => {
                "/api/admin/tenants/{tenant_id}/api-keys"
            }
            Route::AdminListTenantAgents { .. } | Route::AdminCreateTenantAgent { .. } => {
                "/api/admin/tenants/{tenant_id}/agents"
            }
            Route::AdminUpdateTenantAgent { .. } | Route::AdminDeleteTenantAgent { .. } => {
                "/api/admin/tenants/{tenant_id}/agents/{agent_name}"
            }
            Route::AdminListAgentTemplates => "/api/admin/agent-templates",
            Route::AdminListModels => "/api/admin/models",
            Route::AdminListProviders => "/api/admin/providers",
            Route::AdminTenantUsage { .. } => "/api/admin/tenants/{tenant_id}/usage",
            Route::AdminTenantDailyUsage { .. } => "/api/admin/tenants/{tenant_id}/usage/daily",
            Route::AdminAgentRuns { .. } => "/api/admin/tenants/{tenant_id}/agents/{agent_name}/runs",
            Route::AdminAgentStats { .. } => "/api/admin/tenants/{tenant_id}/agents/{agent_name}/stats",
            Route::AdminListAllAgents => "/api/admin/agents",
            Route::AdminStats => "/api/admin/stats",
            Route::AdminListAlerts => "/api/admin/alerts",
            Route::AdminResolveAlert { .. } => "/api/admin/alerts/{alert_id}/resolve",
            Route::AdminAuditLog => "/api/admin/audit-log",
            Route::AdminStartDeploy => "/api/admin/deploy",
            Route::AdminGetDeploy { .. } | Route::AdminDeleteDeploy { .. } => "/api/admin/deploy/{deploy_id}",
            Route::AdminListDeploys => "/api/admin/deploys",
            Route::AdminDeployEvents { .. } => "/api/admin/deploy/{deploy_id}/events",
            Route::AdminCancelDeploy { .. } => "/api/admin/deploy/{deploy_id}/cancel",
            Route::AdminListServices => "/api/admin/services",
            Route::AdminReloadConfig => "/api/admin/config/reload",
            Route::AdminServiceLogs { .. } => "/api/admin/services/{service_name}/logs",
            Route::AdminBackup => "/api/admin/backup",
            Route::AdminSpending => "/api/admin/usage",
            Route::AdminMigrations => "/api/admin/migrations",
            Route::AdminListRequests => "/api/admin/requests",
        }
    }

    /// The auth each route requires (API.md §0.7). No wildcard arm: a new route must choose.
    pub fn auth(&self) -> AuthRequirement {
        use AuthRequirement::*;
        match self {
            Route::Health
            | Route::Console { .. }
            | Route::OpenApi
            | Route::HealthDetailed
            | Route::ConfigInfo
            | Route::AuthRegister
            | Route::AuthLogin
            | Route::AuthRefresh
            | Route::AuthLogout
            | Route::ListPlatformAgents => None,
            Route::Metrics => Scraper,
            Route::Chat
            | Route::ChatStream
            | Route::Research
            | Route::GetMemory
            | Route::ListWorkflows
            | Route::RunWorkflow { .. }
            | Route::ListUserAgents
            | Route::CreateUserAgent
            | Route::ImportUserAgent
            | Route::GetUserAgent { .. }
            | Route::UpdateUserAgent { .. }
            | Route::DeleteUserAgent { .. }
            | Route::ExportUserAgent { .. }
            | Route::ListConversations
            | Route::GetConversation { .. }
            | Route::RenameConversation { .. }
            | Route::DeleteConversation { .. }
            | Route::RagIngest
            | Route::RagSearch
            | Route::RagListCollections
            | Route::RagDeleteCollection
            | Route::RagGetJob { .. }
            | Route::RagCancelJob { .. } => Jwt,
            Route::V1Chat
            | Route::V1ChatStream
            | Route::V1ListAgents
            | Route::V1GetAgent { .. }
            | Route::V1RunAgent { .. }
            | Route::V1ListAgentRuns { .. }
            | Route::V1ListAgentLogs { .. }
            | Route::V1GetUsage
            | Route::V1ListRequests
            | Route::V1ListApiKeys
            | Route::V1CreateApiKey
            | Route::V1RevokeApiKey { .. }
            | Route::OpenAiChatCompletions
            | Route::OpenAiCompletions
            | Route::OpenAiResponses
            | Route::OpenAiEmbeddings
            | Route::OpenAiListModels
            | Route::OpenAiGetModel { .. }
            | Route::AnthropicMessages
            | Route::AnthropicCountTokens
            | Route::Mcp => ApiKey,
            Route::AdminCreateUser
            | Route::AdminCreateTenant
            | Route::AdminListTenants
            | Route::AdminGetTenant { .. }
            | Route::AdminUpdateQuota { .. }
            | Route::AdminSetTenantBudget { .. }
            | Route::AdminSetKeyBudget { .. }
            | Route::AdminProvisionClient
            | Route::AdminCreateApiKey { .. }
            | Route::AdminListApiKeys { .. }
            | Route::AdminRevokeApiKey { .. }
            | Route::AdminListTenantAgents { .. }
            | Route::AdminCreateTenantAgent { .. }
            | Route::AdminUpdateTenantAgent { .. }
            | Route::AdminDeleteTenantAgent { .. }
            | Route::AdminListAgentTemplates
            | Route::AdminListModels
            | Route::AdminListProviders
            | Route::AdminTenantUsage { .. }
            | Route::AdminTenantDailyUsage { .. }
            | Route::AdminAgentRuns { .. }
            | Route::AdminAgentStats { .. }
            | Route::AdminListAllAgents
            | Route::AdminStats
            | Route::AdminListAlerts
            | Route::AdminResolveAlert { .. }
            | Route::AdminAuditLog
            | Route::AdminStartDeploy
            | Route::AdminGetDeploy { .. }
            | Route::AdminListDeploys
            | Route::AdminDeployEvents { .. }
            | Route::AdminCancelDeploy { .. }
            | Route::AdminDeleteDeploy { .. }
            | Route::AdminListServices
            | Route::AdminReloadConfig
            | Route::AdminServiceLogs { .. }
            | Route::AdminBackup
            | Route::AdminSpending
            | Route::AdminMigrations
            | Route::AdminListRequests => Admin,
        }
    }

    /// Whether a user's request calls a model upstream and so is metered against
    /// `[quotas.users]` (tenants' requests are all metered): every LLM route, and RAG ingest and
    /// search when embeddings (or reranking) come from a remote service rather than the
    /// built-in hashing.
    pub fn metered_for_users(&self, config: &Config) -> bool {
        let remote_embedder = config.rag.embedder.kind != EmbedderKind::Hash;
        match self {
            Route::RagIngest => remote_embedder,
            Route::RagSearch => remote_embedder || config.rag.rerank_url.is_some(),
            other => other.runs_model(),
        }
    }

    /// Whether the route runs a chat model (an upstream LLM call). No wildcard: a new route
    /// must say.
    pub fn runs_model(&self) -> bool {
        match self {
            Route::Chat | Route::ChatStream | Route::Research | Route::RunWorkflow { .. } => true,
            Route::V1Chat | Route::V1ChatStream | Route::V1RunAgent { .. } => true,
            Route::OpenAiChatCompletions
            | Route::OpenAiCompletions
            | Route::OpenAiResponses
            | Route::OpenAiEmbeddings
            | Route::AnthropicMessages => true,
            Route::OpenAiListModels | Route::OpenAiGetModel { .. } | Route::AnthropicCountTokens => false,
            // Each MCP tool call is governed on its own (`api::internal`), not the HTTP request.
            Route::Mcp => false,
            // RAG embeds with the configured embedder (see `metered_for_users`), not a chat
            // model; the rest reads or writes stored data only.
            Route::Health
            | Route::Console { .. }
            | Route::OpenApi
            | Route::HealthDetailed
            | Route::ConfigInfo
            | Route::AuthRegister
            | Route::AuthLogin
            | Route::AuthRefresh
            | Route::AuthLogout
            | Route::ListPlatformAgents
            | Route::GetMemory
            | Route::ListWorkflows
            | Route::ListUserAgents
            | Route::CreateUserAgent
            | Route::ImportUserAgent
            | Route::GetUserAgent { .. }
            | Route::UpdateUserAgent { .. }
            | Route::DeleteUserAgent { .. }
            | Route::ExportUserAgent { .. }
            | Route::ListConversations
            | Route::GetConversation { .. }
            | Route::RenameConversation { .. }
            | Route::DeleteConversation { .. }
            | Route::RagIngest
            | Route::RagSearch
            | Route::RagListCollections
            | Route::RagDeleteCollection
            | Route::RagGetJob { .. }
            | Route::RagCancelJob { .. }
            | Route::V1ListAgents
            | Route::V1GetAgent { .. }
            | Route::V1ListAgentRuns { .. }
            | Route::V1ListAgentLogs { .. }
            | Route::V1GetUsage
            | Route::V1ListRequests
            | Route::V1ListApiKeys
            | Route::V1CreateApiKey
            | Route::V1RevokeApiKey { .. }
            | Route::AdminCreateUser
            | Route::AdminCreateTenant
            | Route::AdminListTenants
            | Route::AdminGetTenant { .. }
            | Route::AdminUpdateQuota { .. }
            | Route::AdminSetTenantBudget { .. }
            | Route::AdminSetKeyBudget { .. }
            | Route::AdminProvisionClient
            | Route::AdminCreateApiKey { .. }
            | Route::AdminListApiKeys { .. }
            | Route::AdminRevokeApiKey { .. }
            | Route::AdminListTenantAgents { .. }
            | Route::AdminCreateTenantAgent { .. }
            | Route::AdminUpdateTenantAgent { .. }
            | Route::AdminDeleteTenantAgent { .. }
            | Route::AdminListAgentTemplates
            | Route::AdminListModels
            | Route::AdminListProviders
            | Route::AdminTenantUsage { .. }
            | Route::AdminTenantDailyUsage { .. }
            | Route::AdminAgentRuns { .. }
            | Route::AdminAgentStats { .. }
            | Route::AdminListAllAgents
            | Route::AdminStats
            | Route::AdminListAlerts
            | Route::AdminResolveAlert { .. }
            | Route::AdminAuditLog
            | Route::AdminStartDeploy
            | Route::AdminGetDeploy { .. }
            | Route::AdminListDeploys
            | Route::AdminDeployEvents { .. }
            | Route::AdminCancelDeploy { .. }
            | Route::AdminDeleteDeploy { .. }
            | Route::AdminListServices
            | Route::AdminReloadConfig
            | Route::AdminServiceLogs { .. }
            | Route::AdminBackup
            | Route::AdminSpending
            | Route::AdminMigrations
            | Route::AdminListRequests
            | Route::Metrics => false,
        }
    }

    /// Largest request body the route accepts: documents for RAG ingest, else the default.
    pub fn body_limit(&self, config: &Config) -> usize {
        match self {
            Route::RagIngest => config.rag.max_ingest_bytes,
            Route::OpenAiChatCompletions
            | Route::OpenAiCompletions
            | Route::OpenAiResponses
            | Route::AnthropicMessages
            | Route::AnthropicCountTokens => config.server.max_chat_body_bytes,
            _ => config.server.max_body_bytes,
        }
    }
}

/// Every route pattern, as `Route::pattern` names them: what the OpenAPI document lists
/// (`api::openapi`), and what the route tests walk.
pub const PATTERNS: &[&str] = &[
    "/health",
    "/metrics",
    "/health/detailed",
    "/config/info",
    "/api/auth/register",
    "/api/auth/login",
    "/api/auth/refresh",
    "/api/auth/logout",
    "/api/agents",
    "/api/chat",
    "/api/chat/stream",
    "/api/research",
    "/api/memory",
    "/api/workflows",
    "/api/workflows/{workflow}",
    "/api/user/agents",
    "/api/user/agents/import",
    "/api/user/agents/{name}/export",
    "/api/conversations",
    "/api/rag/ingest",
    "/api/rag/search",
    "/api/rag/collections",
    "/api/rag/collection",
    "/api/rag/jobs/{id}",
    "/v1/chat",
    "/v1/chat/stream",
    "/v1/agents",
    "/v1/agents/{name}",
    "/v1/agents/{name}/run",
    "/v1/agents/{name}/runs",
    "/v1/agents/{name}/logs",
    "/v1/usage",
    "/v1/requests",
    "/v1/api-keys",
    "/v1/api-keys/{id}",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/responses",
    "/v1/embeddings",
    "/v1/models",
    "/v1/models/{id}",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/mcp",
    "/api/admin/users",
    "/api/admin/tenants",
    "/api/admin/tenants/{tenant_id}",
    "/api/admin/tenants/{tenant_id}/quota",
    "/api/admin/tenants/{tenant_id}/budget",
    "/api/admin/tenants/{tenant_id}/api-keys/{key_id}/budget",
    "/api/admin/provision-client",
    "/api/admin/agent-templates",
    "/api/admin/models",
    "/api/admin/providers",
    "/api/admin/tenants/{tenant_id}/usage",
    "/api/admin/tenants/{tenant_id}/usage/daily",
    "/api/admin/tenants/{tenant_id}/agents/{agent_name}/runs",
    "/api/admin/tenants/{tenant_id}/agents/{agent_name}/stats",
    "/api/admin/agents",
    "/api/admin/stats",
    "/api/admin/alerts",
    "/api/admin/alerts/{alert_id}/resolve",
    "/api/admin/audit-log",
    "/api/admin/deploy",
    "/api/admin/deploy/{deploy_id}",
    "/api/admin/deploys",
    "/api/admin/deploy/{deploy_id}/events",
    "/api/admin/deploy/{deploy_id}/cancel",
    "/api/admin/services",
    "/api/admin/config/reload",
    "/api/admin/services/{service_name}/logs",
    "/api/admin/backup",
    "/api/admin/requests",
    "/api/admin/usage",
    "/api/admin/migrations",
    "/api/user/agents/{name}",
    "/api/conversations/{id}",
    "/api/admin/tenants/{tenant_id}/api-keys",
    "/api/admin/tenants/{tenant_id}/api-keys/{key_id}",
    "/api/admin/tenants/{tenant_id}/agents",
    "/api/admin/tenants/{tenant_id}/agents/{agent_name}",
    "/openapi.json",
    "/",
    "/console/{file}",
];

/// The dialect of a path's responses (errors included), known before (and whether or not) a
/// route matches, so that 401s, 404s and rate-limit 429s reach OpenAI and Anthropic clients in
/// their own shape. The one place a route's dialect is decided.
pub fn dialect_of_path(path: &str) -> Dialect {
    let path = path.strip_prefix("/api").filter(|rest| rest.starts_with("/v1/")).unwrap_or(path);
    let Some(rest) = path.strip_prefix("/v1/") else { return Dialect::Ares };
    let first = rest.split('/').next().unwrap_or_default();
    match first {
        "chat" if rest.starts_with("chat/completions") => Dialect::OpenAi,
        "completions" | "responses" | "embeddings" | "models" => Dialect::OpenAi,
        "messages" => Dialect::Anthropic,
        _ => Dialect::Ares,
    }
}

/// Outcome of matching a request line against the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Found(Route),
    /// The path exists with other methods. `auth` is the path's requirement, checked before
    /// answering 405 (API.md §1.0: an unauthenticated wrong-method request on a JWT path is 401).
    MethodNotAllowed {
        allow: Vec<Method>,
        auth: AuthRequirement,
    },
    NotFound,
}

/// Match `method` and `path` (without query string). Never panics, whatever the input.
pub fn resolve(method: &Method, path: &str) -> Resolution {
    let Some(rest) = path.strip_prefix('/') else {
        return Resolution::NotFound;
    };
    let decoded: Vec<String> =
        rest.split('/').map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned()).collect();
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    // `/api/v1/...` is an alias of `/v1/...`.
    let segments = match segments.as_slice() {
        ["api", "v1", rest @ ..] if !rest.is_empty() => [&["v1"][..], rest].concat(),
        _ => segments,
    };
    let candidates = candidates(&segments);
    if candidates.is_empty() {
        return Resolution::NotFound;
    }
    let mut allow = Vec::with_capacity(candidates.len());
    let mut auth = AuthRequirement::None;
    // HEAD is GET without a body (hyper drops the body); uptime checkers use it.
    let wanted = if method == Method::HEAD { &Method::GET } else { method };
    for (candidate_method, route) in candidates {
        if candidate_method == *wanted {
            return Resolution::Found(route);
        }
        auth = route.auth();
        allow.push(candidate_method);
    }
    Resolution::MethodNotAllowed { allow, auth }
}

/// Every (method, route) served at this path. Path parameters must be non-empty.
fn candidates(segments: &[&str]) -> Vec<(Method, Route)> {
    use Method as M;
    let s = |v: &&str| v.to_string();
    match segments {
        ["health"] => vec![(M::GET, Route::Health)],
        [""] => vec![(M::GET, Route::Console { file: None })],
        ["console", file @ ..] if !file.is_empty() && file.iter().all(|part| !part.is_empty()) => {
            vec![(M::GET, Route::Console { file: Some(file.join("/")) })]
        }
        ["metrics"] => vec![(M::GET, Route::Metrics)],
        ["openapi.json"] => vec![(M::GET, Route::OpenApi)],
        ["health", "detailed"] => vec![(M::GET, Route::HealthDetailed)],
        ["config", "info"] => vec![(M::GET, Route::ConfigInfo)],

        ["api", "auth", "register"] => vec![(M::POST, Route::AuthRegister)],
        ["api", "auth", "login"] => vec![(M::POST, Route::AuthLogin)],
        ["api", "auth", "refresh"] => vec![(M::POST, Route::AuthRefresh)],
        ["api", "auth", "logout"] => vec![(M::POST, Route::AuthLogout)],
        ["api", "agents"] => vec![(M::GET, Route::ListPlatformAgents)],

        ["api", "chat"] => vec![(M::POST, Route::Chat)],
        ["api", "chat", "stream"] => vec![(M::POST, Route::ChatStream)],
        ["api", "research"] => vec![(M::POST, Route::Research)],
        ["api", "memory"] => vec![(M::GET, Route::GetMemory)],
        ["api", "workflows"] => vec![(M::GET, Route::ListWorkflows)],
        ["api", "workflows", w] if !w.is_empty() => vec![(M::POST, Route::RunWorkflow { workflow: s(w) })],

        ["api", "user", "agents"] => vec![(M::GET, Route::ListUserAgents), (M::POST, Route::CreateUserAgent)],
        ["api", "user", "agents", "import"] => vec![(M::POST, Route::ImportUserAgent)],
        ["api", "user", "agents", n] if !n.is_empty() => vec![
            (M::GET, Route::GetUserAgent { name: s(n) }),
            (M::PUT, Route::UpdateUserAgent { name: s(n) }),
            (M::DELETE, Route::DeleteUserAgent { name: s(n) }),
        ],
        ["api", "user", "agents", n, "export"] if !n.is_empty() => {
            vec![(M::GET, Route::ExportUserAgent { name: s(n) })]
        }

        ["api", "conversations"] => vec![(M::GET, Route::ListConversations)],
        ["api", "conversations", id] if !id.is_empty() => vec![
            (M::GET, Route::GetConversation { id: s(id) }),
            (M::PUT, Route::RenameConversation { id: s(id) }),
            (M::DELETE, Route::DeleteConversation { id: s(id) }),
        ],

        ["api", "rag", "ingest"] => vec![(M::POST, Route::RagIngest)],
        ["api", "rag", "search"] => vec![(M::POST, Route::RagSearch)],
        ["api", "rag", "collections"] => vec![(M::GET, Route::RagListCollections)],
        ["api", "rag", "collection"] => vec![(M::DELETE, Route::RagDeleteCollection)],
        ["api", "rag", "jobs", id] => vec![
            (M::GET, Route::RagGetJob { id: id.to_string() }),
            (M::DELETE, Route::RagCancelJob { id: id.to_string() }),
        ],

        ["v1", "chat"] => vec![(M::POST, Route::V1Chat)],
        ["v1", "chat", "stream"] => vec![(M::POST, Route::V1ChatStream)],
        ["v1", "agents"] => vec![(M::GET, Route::V1ListAgents)],
        ["v1", "agents", n] if !n.is_empty() => vec![(M::GET, Route::V1GetAgent { name: s(n) })],
        ["v1", "agents", n, "run"] if !n.is_empty() => vec![(M::POST, Route::V1RunAgent { name: s(n) })],
        ["v1", "agents", n, "runs"] if !n.is_empty() => vec![(M::GET, Route::V1ListAgentRuns { name: s(n) })],
        ["v1", "agents", n, "logs"] if !n.is_empty() => vec![(M::GET, Route::V1ListAgentLogs { name: s(n) })],
        ["v1", "usage"] => vec![(M::GET, Route::V1GetUsage)],
        ["v1", "requests"] => vec![(M::GET, Route::V1ListRequests)],
        ["v1", "api-keys"] => vec![(M::GET, Route::V1ListApiKeys), (M::POST, Route::V1CreateApiKey)],
        ["v1", "api-keys", id] if !id.is_empty() => vec![(M::DELETE, Route::V1RevokeApiKey { id: s(id) })],

        ["v1", "chat", "completions"] => vec![(M::POST, Route::OpenAiChatCompletions)],
        ["v1", "completions"] => vec![(M::POST, Route::OpenAiCompletions)],
        ["v1", "responses"] => vec![(M::POST, Route::OpenAiResponses)],
        ["v1", "embeddings"] => vec![(M::POST, Route::OpenAiEmbeddings)],
        ["v1", "models"] => vec![(M::GET, Route::OpenAiListModels)],
        // Model ids may contain slashes (`meta-llama/Llama-3.1-8B`).
        ["v1", "models", id @ ..] if id.iter().all(|part| !part.is_empty()) => {
            vec![(M::GET, Route::OpenAiGetModel { id: id.join("/") })]
        }
        ["v1", "messages"] => vec![(M::POST, Route::AnthropicMessages)],
        ["v1", "messages", "count_tokens"] => vec![(M::POST, Route::AnthropicCountTokens)],
        ["mcp"] => vec![(M::POST, Route::Mcp)],

        ["api", "admin", rest @ ..] => admin_candidates(rest),
        _ => Vec::new(),
    }
}

fn admin_candidates(segments: &[&str]) -> Vec<(Method, Route)> {
    use Method as M;
    let s = |v: &&str| v.to_string();
    match segments {
        ["users"] => vec![(M::POST, Route::AdminCreateUser)],
        ["tenants"] => vec![(M::GET, Route::AdminListTenants), (M::POST, Route::AdminCreateTenant)],
        ["tenants", t] if !t.is_empty() => vec![(M::GET, Route::AdminGetTenant { tenant_id: s(t) })],
        ["tenants", t, "quota"] if !t.is_empty() => vec![(M::PUT, Route::AdminUpdateQuota { tenant_id: s(t) })],
        ["tenants", t, "budget"] if !t.is_empty() => vec![(M::PUT, Route::AdminSetTenantBudget { tenant_id: s(t) })],
        ["tenants", t, "api-keys", k, "budget"] if !t.is_empty() && !k.is_empty() => {
            vec![(M::PUT, Route::AdminSetKeyBudget { tenant_id: s(t), key_id: s(k) })]
        }
        ["tenants", t, "api-keys", k] if !t.is_empty() && !k.is_empty() => {
            vec![(M::DELETE, Route::AdminRevokeApiKey { tenant_id: s(t), key_id: s(k) })]
        }
        ["tenants", t, "api-keys"] if !t.is_empty() => vec![
            (M::GET, Route::AdminListApiKeys { tenant_id: s(t) }),
            (M::POST, Route::AdminCreateApiKey { tenant_id: s(t) }),
        ],
        ["tenants", t, "agents"] if !t.is_empty() => vec![
            (M::GET, Route::AdminListTenantAgents { tenant_id: s(t) }),
            (M::POST, Route::AdminCreateTenantAgent { tenant_id: s(t) }),
        ],
        ["tenants", t, "agents", a] if !t.is_empty() && !a.is_empty() => vec![
            (M::PUT, Route::AdminUpdateTenantAgent { tenant_id: s(t), agent_name: s(a) }),
            (M::DELETE, Route::AdminDeleteTenantAgent { tenant_id: s(t), agent_name: s(a) }),
        ],
        ["tenants", t, "agents", a, "runs"] if !t.is_empty() && !a.is_empty() => {
            vec![(M::GET, Route::AdminAgentRuns { tenant_id: s(t), agent_name: s(a) })]
        }
        ["tenants", t, "agents", a, "stats"] if !t.is_empty() && !a.is_empty() => {
            vec![(M::GET, Route::AdminAgentStats { tenant_id: s(t), agent_name: s(a) })]
        }
        ["tenants", t, "usage"] if !t.is_empty() => vec![(M::GET, Route::AdminTenantUsage { tenant_id: s(t) })],
        ["tenants", t, "usage", "daily"] if !t.is_empty() => {
            vec![(M::GET, Route::AdminTenantDailyUsage { tenant_id: s(t) })]
        }
        ["provision-client"] => vec![(M::POST, Route::AdminProvisionClient)],
        ["agent-templates"] => vec![(M::GET, Route::AdminListAgentTemplates)],
        ["models"] => vec![(M::GET, Route::AdminListModels)],
        ["providers"] => vec![(M::GET, Route::AdminListProviders)],
        ["agents"] => vec![(M::GET, Route::AdminListAllAgents)],
        ["stats"] => vec![(M::GET, Route::AdminStats)],
        ["alerts"] => vec![(M::GET, Route::AdminListAlerts)],
        ["alerts", a, "resolve"] if !a.is_empty() => vec![(M::POST, Route::AdminResolveAlert { alert_id: s(a) })],
        ["audit-log"] => vec![(M::GET, Route::AdminAuditLog)],
        ["deploy"] => vec![(M::POST, Route::AdminStartDeploy)],
        ["deploy", d] if !d.is_empty() => vec![
            (M::GET, Route::AdminGetDeploy { deploy_id: s(d) }),
            (M::DELETE, Route::AdminDeleteDeploy { deploy_id: s(d) }),
        ],
        ["deploy", d, "events"] if !d.is_empty() => vec![(M::GET, Route::AdminDeployEvents { deploy_id: s(d) })],
        ["deploy", d, "cancel"] if !d.is_empty() => vec![(M::POST, Route::AdminCancelDeploy { deploy_id: s(d) })],
        ["deploys"] => vec![(M::GET, Route::AdminListDeploys)],
        ["services"] => vec![(M::GET, Route::AdminListServices)],
        ["config", "reload"] => vec![(M::POST, Route::AdminReloadConfig)],
        ["services", n, "logs"] if !n.is_empty() => vec![(M::GET, Route::AdminServiceLogs { service_name: s(n) })],
        ["backup"] => vec![(M::POST, Route::AdminBackup)],
        ["requests"] => vec![(M::GET, Route::AdminListRequests)],
        ["usage"] => vec![(M::GET, Route::AdminSpending)],
        ["migrations"] => vec![(M::GET, Route::AdminMigrations)],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(method: Method, path: &str, expected: Resolution) {
        assert_eq!(resolve(&method, path), expected, "{method} {path}");
        if let Resolution::Found(route) = &expected {
            assert!(pattern_matches(route.pattern(), path), "{method} {path} is not {}", route.pattern());
        }
    }

    /// Whether `path` is an instance of `pattern`: literal segments equal, `{…}` any non-empty
    /// segment (`/v1/models/{id}` any rest: model ids may hold slashes); `/api/v1/…` as `/v1/…`.
    fn pattern_matches(pattern: &str, path: &str) -> bool {
        let path = path.strip_prefix("/api").filter(|rest| rest.starts_with("/v1/")).unwrap_or(path);
        let (mut wanted, mut given) = (pattern.split('/'), path.split('/'));
        loop {
            match (wanted.next(), given.next()) {
                (None, None) => return true,
                (Some("{id}"), Some(segment)) if pattern == "/v1/models/{id}" => {
                    return !segment.is_empty() && given.all(|s| !s.is_empty());
                }
                (Some(w), Some(g)) if w.starts_with('{') && w.ends_with('}') && !g.is_empty() => {}
                (Some(w), Some(g)) if w == g => {}
                _ => return false,
            }
        }
    }

    /// Every pattern `Route::pattern` names is in PATTERNS (what the OpenAPI document lists).
    #[test]
    fn every_pattern_route_pattern_names_is_listed() {
        // Read from this file: the string literals of `Route::pattern`'s match arms. A route
        // whose pattern is not in PATTERNS would be missing from /openapi.json.
        let source = include_str!("routes.rs");
        let start = source.find("pub fn pattern(&self)").expect("Route::pattern");
        let end = source[start..].find("pub fn auth(&self)").expect("Route::auth") + start;
        let named: Vec<&str> =
            source[start..end].split('"').skip(1).step_by(2).filter(|s| s.starts_with('/')).collect();
        assert!(named.len() > 70, "{named:?}");
        for pattern in named {
            assert!(PATTERNS.contains(&pattern), "{pattern} is not in PATTERNS");
        }
    }

    /// Every pattern, its placeholders filled in, resolves (under some method) to routes that
    /// name that very pattern.
    #[test]
    fn every_pattern_names_the_routes_it_resolves_to() {
        let patterns = PATTERNS;
        for pattern in patterns {
            let path: String = pattern
                .split('/')
                .map(|segment| if segment.starts_with('{') { "x" } else { segment })
                .collect::<Vec<_>>()
                .join("/");
            let mut found = 0;
            for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
                if let Resolution::Found(route) = resolve(&method, &path) {
                    assert_eq!(route.pattern(), *pattern, "{method} {path}");
                    found += 1;
                }
            }
            assert!(found > 0, "{pattern} resolves to nothing");
        }
    }

    #[test]
    fn resolves_documented_paths() {
        check(Method::GET, "/health", Resolution::Found(Route::Health));
        check(Method::POST, "/api/admin/tenants", Resolution::Found(Route::AdminCreateTenant));
        check(
            Method::PUT,
            "/api/admin/tenants/abc/agents/my%20agent",
            Resolution::Found(Route::AdminUpdateTenantAgent { tenant_id: "abc".into(), agent_name: "my agent".into() }),
        );
        check(Method::GET, "/v1/agents/x/runs", Resolution::Found(Route::V1ListAgentRuns { name: "x".into() }));
        check(Method::GET, "/api/v1/agents/x/runs", Resolution::Found(Route::V1ListAgentRuns { name: "x".into() }));
        check(Method::POST, "/api/user/agents/import", Resolution::Found(Route::ImportUserAgent));
        check(Method::HEAD, "/health", Resolution::Found(Route::Health));
    }

    #[test]
    fn openai_and_anthropic_paths_resolve_with_their_dialect() {
        check(Method::POST, "/v1/chat/completions", Resolution::Found(Route::OpenAiChatCompletions));
        check(Method::POST, "/api/v1/chat/completions", Resolution::Found(Route::OpenAiChatCompletions));
        check(
            Method::GET,
            "/v1/models/agent:helper",
            Resolution::Found(Route::OpenAiGetModel { id: "agent:helper".into() }),
        );
        check(
            Method::GET,
            "/v1/models/meta-llama/Llama-3.1-8B",
            Resolution::Found(Route::OpenAiGetModel { id: "meta-llama/Llama-3.1-8B".into() }),
        );
        check(Method::GET, "/v1/models/", Resolution::NotFound);
        check(Method::POST, "/v1/messages/count_tokens", Resolution::Found(Route::AnthropicCountTokens));
        for path in ["/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/embeddings", "/v1/models"] {
            assert_eq!(dialect_of_path(path), Dialect::OpenAi, "{path}");
        }
        assert_eq!(dialect_of_path("/v1/messages/count_tokens"), Dialect::Anthropic);
        assert_eq!(dialect_of_path("/api/v1/models/x"), Dialect::OpenAi);
        assert_eq!(dialect_of_path("/v1/messages"), Dialect::Anthropic);
        assert_eq!(dialect_of_path("/v1/chat"), Dialect::Ares);
        assert_eq!(dialect_of_path("/v1/chat/stream"), Dialect::Ares);
        assert_eq!(dialect_of_path("/api/chat"), Dialect::Ares);
    }

    #[test]
    fn trailing_slashes_empty_params_and_unknown_paths_are_404() {
        check(Method::GET, "/api/agents/", Resolution::NotFound);
        check(Method::GET, "/api/admin/tenants//quota", Resolution::NotFound);
        check(Method::GET, "/nope", Resolution::NotFound);
        check(Method::GET, "", Resolution::NotFound);
        check(Method::GET, "/api/v1", Resolution::NotFound);
        check(Method::GET, "/HEALTH", Resolution::NotFound);
    }

    #[test]
    fn wrong_method_lists_allowed_methods_and_keeps_the_paths_auth() {
        check(
            Method::GET,
            "/api/chat",
            Resolution::MethodNotAllowed { allow: vec![Method::POST], auth: AuthRequirement::Jwt },
        );
        check(
            Method::DELETE,
            "/api/admin/tenants",
            Resolution::MethodNotAllowed { allow: vec![Method::GET, Method::POST], auth: AuthRequirement::Admin },
        );
        check(
            Method::POST,
            "/health",
            Resolution::MethodNotAllowed { allow: vec![Method::GET], auth: AuthRequirement::None },
        );
    }

    #[test]
    fn users_are_metered_on_routes_that_call_a_model() {
        let mut config = Config::default();
        for route in [Route::Chat, Route::ChatStream, Route::Research, Route::RunWorkflow { workflow: "w".into() }] {
            assert!(route.metered_for_users(&config), "{route:?}");
        }
        for route in [Route::ListConversations, Route::GetMemory, Route::RagIngest, Route::RagSearch] {
            assert!(!route.metered_for_users(&config), "{route:?} with the built-in embedder");
        }
        config.rag.rerank_url = Some("http://127.0.0.1:1/rerank".into());
        assert!(Route::RagSearch.metered_for_users(&config));
        assert!(!Route::RagIngest.metered_for_users(&config));
        config.rag.embedder.kind = EmbedderKind::Ollama;
        assert!(Route::RagIngest.metered_for_users(&config));
        check(Method::POST, "/api/admin/users", Resolution::Found(Route::AdminCreateUser));
        assert_eq!(Route::AdminCreateUser.auth(), AuthRequirement::Admin);
    }

    proptest! {
        #[test]
        fn never_panics(path in "\\PC*", method in prop::sample::select(vec![Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH])) {
            let _ = resolve(&method, &path);
            let _ = resolve(&method, &format!("/{path}"));
            let _ = resolve(&method, &format!("/api/admin/{path}"));
            let _ = resolve(&method, &format!("/api/v1/{path}"));
        }
    }
}
