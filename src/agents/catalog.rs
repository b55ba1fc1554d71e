//! The platform agents (built-in ∪ `[[agents]]`, config winning by name) and router-answer
//! parsing.

use super::builtin::{self, ROUTER_FALLBACK, SPECIALISTS};
use super::spec::AgentSpec;
use crate::config::Config;

pub struct Catalog {
    agents: Vec<AgentSpec>,
}

impl Catalog {
    pub fn new(config: &Config) -> Catalog {
        let mut agents = builtin::agents();
        for configured in &config.agents {
            let spec = AgentSpec::from_config(configured);
            match agents.iter_mut().find(|a| a.name == spec.name) {
                Some(existing) => *existing = spec,
                None => agents.push(spec),
            }
        }
        Catalog { agents }
    }

    pub fn all(&self) -> &[AgentSpec] {
        &self.agents
    }

    pub fn get(&self, name: &str) -> Option<&AgentSpec> {
        self.agents.iter().find(|a| a.name == name)
    }

    /// The platform agent a caller's name means: the lower-cased name first (chat takes
    /// built-in names in any case), else the exact one (configured names may have capitals).
    pub fn named(&self, name: &str) -> Option<&AgentSpec> {
        self.get(&name.to_lowercase()).or_else(|| self.get(name))
    }

    /// The platform agent whose name equals `name` ignoring case. Such a name belongs to the
    /// platform for everyone but the owner of a same-named agent, so it is compared loosely:
    /// `Product` must not pass for a name other than `product`.
    pub fn reserving(&self, name: &str) -> Option<&AgentSpec> {
        let wanted = name.to_lowercase();
        self.agents.iter().find(|a| a.name.to_lowercase() == wanted)
    }

    /// The agent a router reply names, for chat: a specialist, else the fallback (never the
    /// router itself).
    pub fn parse_route(&self, reply: &str) -> String {
        self.route_target(reply).filter(|name| name != "router").unwrap_or_else(|| ROUTER_FALLBACK.to_string())
    }

    /// The agent a router reply names, or `None`: the whole reply when it is an agent name, else
    /// the first word that is one, else the first agent name contained in it (names of three or
    /// more letters only — `hr` hides inside too many words). `research` means the orchestrator.
    pub fn route_target(&self, reply: &str) -> Option<String> {
        let lowered = reply.trim().to_lowercase();
        let is_target = |word: &str| word == "research" || SPECIALISTS.contains(&word) || self.get(word).is_some();
        let canonical = |word: &str| if word == "research" { ROUTER_FALLBACK.to_string() } else { word.to_string() };

        let whole = lowered.trim_matches(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'));
        if is_target(whole) {
            return Some(canonical(whole));
        }
        let words = lowered.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_')).filter(|w| !w.is_empty());
        for word in words {
            if is_target(word) {
                return Some(canonical(word));
            }
        }
        let candidates =
            SPECIALISTS.iter().copied().chain(["research"]).chain(self.agents.iter().map(|a| a.name.as_str()));
        candidates
            .filter(|name| name.len() >= 3 && name.to_lowercase() == *name)
            .find(|name| lowered.contains(name))
            .map(canonical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(reply: &str, expected: &str) {
        let catalog = Catalog::new(&Config::default());
        assert_eq!(catalog.parse_route(reply), expected, "{reply:?}");
    }

    #[test]
    fn router_replies_map_to_specialists() {
        check("product", "product");
        check("  Finance.\n", "finance");
        check("I think the best agent is: sales", "sales");
        check("research", "orchestrator");
        check("no idea", "orchestrator");
        check("", "orchestrator");
        check("router", "orchestrator");
        check("HR", "hr");
        check("salesperson needed", "sales");
    }

    #[test]
    fn platform_names_are_found_and_reserved_whatever_their_case() {
        let config = Config {
            agents: vec![crate::config::AgentConfig { name: "MyBot".into(), ..Default::default() }],
            ..Config::default()
        };
        let catalog = Catalog::new(&config);
        assert_eq!(catalog.named("PRODUCT").map(|a| a.name.as_str()), Some("product"));
        assert_eq!(catalog.named("MyBot").map(|a| a.name.as_str()), Some("MyBot"));
        assert_eq!(catalog.named("mybot"), None, "only built-in names are case-insensitive in chat");
        for name in ["product", "Router", "MYBOT", "mybot"] {
            assert!(catalog.reserving(name).is_some(), "{name}");
        }
        assert!(catalog.reserving("products").is_none());
    }

    #[test]
    fn route_targets_include_the_router_and_none_for_unknown_answers() {
        let catalog = Catalog::new(&Config::default());
        assert_eq!(catalog.route_target("router").as_deref(), Some("router"));
        assert_eq!(catalog.route_target("Routing to: invoice.").as_deref(), Some("invoice"));
        assert_eq!(catalog.route_target("research").as_deref(), Some("orchestrator"));
        assert_eq!(catalog.route_target("through the night"), None);
        assert_eq!(catalog.route_target("no idea"), None);
    }
}
