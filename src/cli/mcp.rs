//! `ares mcp`: ARES's tools for assistants that start MCP servers as commands (Claude Desktop,
//! Claude Code): MCP over stdio, bridged to the running server's `POST /mcp`.
//!
//! The bridge opens no database: the server holds it, and every tool call is governed there
//! (the tenant key in `ARES_API_KEY`, its quotas and budgets, usage with `source = "mcp"`). It
//! finds the server as `ares backup` does (`data/server.json`), or at `--url` / `ARES_URL`.
//! stdout is the protocol; everything else goes to stderr.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorData, ListToolsResult, PaginatedRequestParams, ResultType,
    ServerConfig,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, RoleServer, ServerHandler, ServiceError, ServiceExt as _};

use super::{Failure, init_logging, process_env};
use crate::GlobalArgs;

pub fn run(global: &GlobalArgs, url: Option<String>) -> Result<(), Failure> {
    init_logging("warn");
    let key = process_env("ARES_API_KEY")
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Failure::usage("set ARES_API_KEY to a tenant API key (ares_…): the tools act for its tenant"))?;
    let base = match url.filter(|u| !u.trim().is_empty()) {
        Some(url) => url.trim().trim_end_matches('/').to_string(),
        None => format!("http://{}", super::running::listening_addr(global)?),
    };
    let endpoint = if base.ends_with("/mcp") { base } else { format!("{base}/mcp") };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(bridge(endpoint, key))
}

async fn bridge(endpoint: String, key: String) -> Result<(), Failure> {
    ares::mcp::install_tls_provider();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(endpoint.as_str()).auth_header(key),
    );
    let upstream = ().serve(transport).await.map_err(|e| {
        Failure::runtime(format!(
            "cannot open MCP at {endpoint} (is the server running, and ARES_API_KEY a live key?): {e}"
        ))
    })?;
    tracing::info!(%endpoint, "bridging stdio to ARES");
    let bridge = Bridge { upstream: upstream.peer().clone(), endpoint: endpoint.clone() };
    let served = bridge
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| Failure::runtime(format!("the MCP client on stdin did not initialise: {e}")))?;
    let _ = served.waiting().await;
    Ok(())
}

/// The stdio side: every tool request goes to the server, answers and errors come back as
/// they are.
#[derive(Clone)]
struct Bridge {
    upstream: Peer<RoleClient>,
    endpoint: String,
}

impl Bridge {
    fn error(&self, error: ServiceError) -> ErrorData {
        match error {
            ServiceError::McpError(error) => error,
            other => ErrorData::internal_error(format!("ARES at {}: {other}", self.endpoint), None),
        }
    }
}

impl ServerHandler for Bridge {
    fn get_info(&self) -> ServerConfig {
        ares::mcp::server::info()
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        // Re-stated whole: what the upstream's answer said of its paging and caching is the
        // upstream's, and the 2026 protocol's clients require the result type.
        let _ = request;
        let tools = self.upstream.list_all_tools().await.map_err(|e| self.error(e))?;
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let mut result = self.upstream.call_tool(request).await.map_err(|e| self.error(e))?;
        result.result_type.get_or_insert(ResultType::COMPLETE);
        Ok(result.into())
    }
}
