//! The Model Context Protocol, both ways.
//!
//! - [`client`]: MCP servers as tool sources. An agent's `tools` name `mcp:<server>` (all its
//!   tools) or `mcp:<server>/<tool>`; the model sees them as `<server>__<tool>`, and the tool
//!   coordinator calls them like the built-ins. Servers start on first use, never at boot.
//! - [`server`]: ARES as an MCP server at `POST /mcp` (and through `ares mcp`, a stdio bridge
//!   to it): agents, chat, RAG, research and the calculator as tools for a tenant key.
//!
//! Both sides are the official Rust SDK, `rmcp`.

pub mod client;
pub mod server;

/// Make rustls's ring provider the process default before an MCP HTTP client is built (rmcp's
/// reqwest is built without one, and panics when none is installed). Idempotent.
pub fn install_tls_provider() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Err: another part of the process installed one first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Separates the server from the tool in the names models see: `fs__read_file`. Server names
/// may not contain it (config validation), so the first occurrence splits.
const OFFERED_SEPARATOR: &str = "__";

/// What an agent's `tools` entry asks of one MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection<'a> {
    /// `mcp:<server>`: every tool it lists.
    All { server: &'a str },
    /// `mcp:<server>/<tool>`.
    One { server: &'a str, tool: &'a str },
}

impl<'a> Selection<'a> {
    pub fn parse(entry: &'a str) -> Option<Selection<'a>> {
        let rest = entry.strip_prefix("mcp:")?;
        match rest.split_once('/') {
            Some((server, tool)) if !server.is_empty() && !tool.is_empty() => Some(Selection::One { server, tool }),
            Some(_) => None,
            None if !rest.is_empty() => Some(Selection::All { server: rest }),
            None => None,
        }
    }

    pub fn server(&self) -> &'a str {
        match self {
            Selection::All { server } | Selection::One { server, .. } => server,
        }
    }

    /// Whether this entry lets the agent call `tool` of `server`.
    pub fn covers(&self, server: &str, tool: &str) -> bool {
        match self {
            Selection::All { server: s } => *s == server,
            Selection::One { server: s, tool: t } => *s == server && *t == tool,
        }
    }
}

/// The MCP server an agent's `tools` entry names, if it names one.
pub fn server_of(entry: &str) -> Option<&str> {
    Selection::parse(entry).map(|s| s.server())
}

/// The name a model sees for `tool` of `server`.
pub fn offered_name(server: &str, tool: &str) -> String {
    format!("{server}{OFFERED_SEPARATOR}{tool}")
}

/// `fs__read_file` → (`fs`, `read_file`).
pub fn split_offered(name: &str) -> Option<(&str, &str)> {
    name.split_once(OFFERED_SEPARATOR).filter(|(server, tool)| !server.is_empty() && !tool.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections_and_offered_names() {
        assert_eq!(Selection::parse("mcp:fs"), Some(Selection::All { server: "fs" }));
        assert_eq!(Selection::parse("mcp:fs/read_file"), Some(Selection::One { server: "fs", tool: "read_file" }));
        for bad in ["calculator", "mcp:", "mcp:/x", "mcp:fs/"] {
            assert_eq!(Selection::parse(bad), None, "{bad}");
        }
        assert!(Selection::parse("mcp:fs").unwrap().covers("fs", "anything"));
        assert!(!Selection::parse("mcp:fs/read_file").unwrap().covers("fs", "write_file"));
        assert_eq!(split_offered(&offered_name("fs", "read__odd")), Some(("fs", "read__odd")));
        assert_eq!(split_offered("calculator"), None);
    }
}
