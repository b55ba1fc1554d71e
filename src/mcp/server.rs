//! ARES as an MCP server: `POST /mcp` (Streamable HTTP), authenticated by a tenant API key.
//!
//! The route is authenticated like every `/v1` route, then handed to the SDK's Streamable HTTP
//! service, stateless (each POST stands alone, so no session outlives the key that opened it)
//! and answering JSON. Each tool call runs the route an HTTP client would call
//! ([`crate::api::internal`]): `run_agent` is governed and metered exactly like
//! `POST /v1/agents/{name}/run`, with the usage event's `source` = `"mcp"`. A failure the
//! caller can act on is a tool error (`isError`, with the message); an exhausted quota is a
//! JSON-RPC error naming the limit.

use std::net::IpAddr;
use std::sync::Arc;

use http::Method;
use http_body_util::BodyExt as _;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorCode, ErrorData, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{RoleServer, ServerHandler};
use serde_json::{Map, Value, json};

use crate::api::Context;
use crate::api::internal::{self, Call};
use crate::api::routes::Route;
use crate::app::App;
use crate::auth::TenantPrincipal;
use crate::error::ApiError;
use crate::http::{Request, Response};

/// JSON-RPC error code for an exhausted quota (in the implementation-defined server range).
const QUOTA_EXCEEDED: ErrorCode = ErrorCode(-32029);

/// Who is calling: what `/mcp` authenticated, passed to the handler through the request.
#[derive(Clone)]
struct Caller {
    app: Arc<App>,
    tenant: TenantPrincipal,
    client_ip: IpAddr,
}

/// Serve one `POST /mcp` for the authenticated tenant.
pub async fn serve(ctx: &Context, mut request: Request) -> Result<Response, ApiError> {
    let caller = Caller { app: ctx.app.clone(), tenant: ctx.tenant()?.clone(), client_ip: ctx.client_ip };
    request.extensions_mut().insert(caller);
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        // The key authenticates every request; behind a proxy the Host is the site's name.
        .disable_allowed_hosts()
        .with_max_request_body_bytes(Route::Mcp.body_limit(&ctx.app.config()));
    let service = StreamableHttpService::new(|| Ok(Tools), Arc::new(NeverSessionManager::default()), config);
    let response = service.handle(request).await;
    Ok(response.map(|body| body.map_err(|never| match never {}).boxed()))
}

/// The tools; stateless, as the caller comes with each request.
#[derive(Clone)]
struct Tools;

/// Who answers `initialize`: the server, and `ares mcp` in its name.
pub fn info() -> ServerConfig {
    ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
        .with_server_info(Implementation::new("ares", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "ARES: run this tenant's agents (list_agents, run_agent, chat), search and add to its \
             knowledge collections (rag_search, rag_ingest), research a question, or calculate.",
        )
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        info()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(catalog()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        catalog().into_iter().find(|tool| tool.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            .cloned()
            .ok_or_else(|| ErrorData::internal_error("the request carries no authenticated caller", None))?;
        let arguments = request.arguments.unwrap_or_default();
        let result = match run(&caller, &request.name, &arguments).await {
            Ok(answer) => CallToolResult::success(vec![ContentBlock::text(answer)]),
            Err(ToolFailure::Quota(message)) => return Err(ErrorData::new(QUOTA_EXCEEDED, message, None)),
            Err(ToolFailure::Tool(message)) => CallToolResult::error(vec![ContentBlock::text(message)]),
        };
        Ok(result.into())
    }
}

enum ToolFailure {
    /// The tenant's quota is used up: a protocol error, so no client mistakes it for an answer.
    Quota(String),
    /// Anything the caller (or its model) can read and act on.
    Tool(String),
}

impl From<ApiError> for ToolFailure {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::QuotaExceeded { message, .. } => ToolFailure::Quota(format!("Quota exceeded: {message}")),
            other => ToolFailure::Tool(other.to_string()),
        }
    }
}

/// Run one tool; the text it answers with.
async fn run(caller: &Caller, tool: &str, arguments: &Map<String, Value>) -> Result<String, ToolFailure> {
    let text = |name: &str| arguments.get(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let required =
        |name: &str| text(name).ok_or_else(|| ToolFailure::Tool(format!("Missing required argument: {name}")));
    let call = match tool {
        "calculator" => {
            let expression = required("expression")?;
            let counted = Call { route: None, method: Method::POST, body: None, label: "mcp:calculator" };
            internal::call(&caller.app, &caller.tenant, caller.client_ip, counted).await?;
            return crate::tools::calculator::evaluate(expression)
                .map(crate::tools::calculator::format_result)
                .map_err(|e| ToolFailure::Tool(format!("Cannot evaluate '{expression}': {e}")));
        }
        "list_agents" => {
            Call { route: Some(Route::V1ListAgents), method: Method::GET, body: None, label: "mcp:list_agents" }
        }
        "run_agent" => Call {
            route: Some(Route::V1RunAgent { name: required("agent")?.to_string() }),
            method: Method::POST,
            body: Some(json!({ "input": { "message": required("input")? } })),
            label: "mcp:run_agent",
        },
        "chat" => {
            let mut body = json!({ "message": required("message")? });
            if let Some(agent) = text("agent") {
                body["agent_type"] = agent.into();
            }
            if let Some(context_id) = text("context_id") {
                body["context_id"] = context_id.into();
            }
            Call { route: Some(Route::V1Chat), method: Method::POST, body: Some(body), label: "mcp:chat" }
        }
        "rag_search" => {
            let mut body = json!({ "collection": required("collection")?, "query": required("query")? });
            for key in ["strategy", "limit"] {
                if let Some(value) = arguments.get(key).filter(|v| !v.is_null()) {
                    body[key] = value.clone();
                }
            }
            Call { route: Some(Route::RagSearch), method: Method::POST, body: Some(body), label: "mcp:rag_search" }
        }
        "rag_ingest" => {
            let mut body = json!({ "collection": required("collection")?, "content": required("content")? });
            for key in ["title", "source"] {
                if let Some(value) = text(key) {
                    body[key] = value.into();
                }
            }
            Call { route: Some(Route::RagIngest), method: Method::POST, body: Some(body), label: "mcp:rag_ingest" }
        }
        "research" => {
            let mut body = json!({ "query": required("query")? });
            if let Some(depth) = arguments.get("depth").filter(|v| !v.is_null()) {
                body["depth"] = depth.clone();
            }
            Call { route: Some(Route::Research), method: Method::POST, body: Some(body), label: "mcp:research" }
        }
        other => return Err(ToolFailure::Tool(format!("Unknown tool: {other}"))),
    };
    let answer = internal::call(&caller.app, &caller.tenant, caller.client_ip, call).await?;
    render(tool, answer)
}

/// The tool's answer as text: the reply itself where there is one (what a person or model
/// wants to read), else the JSON the route answered. A run that failed is a tool error.
fn render(tool: &str, answer: Value) -> Result<String, ToolFailure> {
    Ok(match tool {
        "run_agent" => {
            if answer.get("status").and_then(Value::as_str) == Some("failed") {
                let error = answer.get("error").and_then(Value::as_str).unwrap_or("the run failed");
                return Err(ToolFailure::Tool(error.to_string()));
            }
            match answer.get("output") {
                Some(output) => {
                    output.get("response").and_then(Value::as_str).map_or_else(|| output.to_string(), str::to_string)
                }
                None => answer.to_string(),
            }
        }
        "research" => answer.get("findings").and_then(Value::as_str).map_or_else(|| answer.to_string(), str::to_string),
        // The reply, who answered, and where to continue the conversation.
        "chat" => json!({
            "response": answer.get("response"),
            "agent": answer.get("agent"),
            "context_id": answer.get("context_id"),
        })
        .to_string(),
        _ => answer.to_string(),
    })
}

fn catalog() -> Vec<Tool> {
    let tool = |name: &'static str, description: &'static str, schema: Value| {
        let Value::Object(schema) = schema else { unreachable!("schemas are objects") };
        Tool::new(name, description, Arc::new(schema))
    };
    let string = |description: &str| json!({ "type": "string", "description": description });
    vec![
        tool(
            "list_agents",
            "List this tenant's own agents (what run_agent runs; the platform's agents answer through chat).",
            json!({ "type": "object", "properties": {} }),
        ),
        tool(
            "run_agent",
            "Run one of this tenant's agents on an input and return its output (a recorded, metered run).",
            json!({
                "type": "object",
                "properties": { "agent": string("the agent's name"), "input": string("what to ask it") },
                "required": ["agent", "input"]
            }),
        ),
        tool(
            "chat",
            "Chat with an agent (or the default one); pass the returned context_id to continue the conversation.",
            json!({
                "type": "object",
                "properties": {
                    "message": string("the message"),
                    "agent": string("an agent name; omitted: the default agent"),
                    "context_id": string("a conversation to continue")
                },
                "required": ["message"]
            }),
        ),
        tool(
            "rag_search",
            "Search one of this tenant's knowledge collections; returns the matching chunks with scores and sources.",
            json!({
                "type": "object",
                "properties": {
                    "collection": string("the collection"),
                    "query": string("what to look for"),
                    "strategy": { "type": "string", "enum": ["semantic", "bm25", "fuzzy", "hybrid"] },
                    "limit": { "type": "integer", "minimum": 1, "maximum": 100 }
                },
                "required": ["collection", "query"]
            }),
        ),
        tool(
            "rag_ingest",
            "Add a document to one of this tenant's knowledge collections (created on first use).",
            json!({
                "type": "object",
                "properties": {
                    "collection": string("the collection"),
                    "content": string("the document's text"),
                    "title": string("its title"),
                    "source": string("where it came from")
                },
                "required": ["collection", "content"]
            }),
        ),
        tool(
            "research",
            "Research a question: sub-questions answered by agents, then one synthesis.",
            json!({
                "type": "object",
                "properties": {
                    "query": string("the question"),
                    "depth": { "type": "integer", "minimum": 1, "maximum": 10 }
                },
                "required": ["query"]
            }),
        ),
        tool(
            "calculator",
            "Evaluate an arithmetic expression: + - * / % ^, parentheses, sqrt, sin, cos, tan, log, ln, abs, exp, floor, ceil, round, pi, e.",
            json!({
                "type": "object",
                "properties": { "expression": string("e.g. (2 + 3) * sqrt(16)") },
                "required": ["expression"]
            }),
        ),
    ]
}
