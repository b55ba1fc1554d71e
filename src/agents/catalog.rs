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

    /// The agent a router reply names: the first specialist mentioned (or `research`, which
    /// means the orchestrator); anything else goes to the fallback.
    pub fn parse_route(&self, reply: &str) -> String {
        let lowered = reply.to_lowercase();
        let words: Vec<&str> =
            lowered.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_')).filter(|w| !w.is_empty()).collect();
        for word in &words {
            if *word == "research" {
                return ROUTER_FALLBACK.to_string();
            }
            if SPECIALISTS.contains(word) || (self.get(word).is_some() && *word != "router") {
                return (*word).to_string();
            }
        }
        ROUTER_FALLBACK.to_string()
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
    }
}
