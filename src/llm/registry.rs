//! Providers → models → tiers, from the config. An agent names a model or a tier; this is where
//! that name becomes a provider and a provider-side model id.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::error::LlmError;
use super::provider::Provider;
use crate::config::{Config, EnvLookup, Tier};

/// A usable model: which provider serves it under which id.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    /// The name agents and clients use.
    pub name: String,
    pub provider: Arc<Provider>,
    pub model_id: String,
    pub context_length: Option<u32>,
    pub tier: Option<Tier>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// `None` = unknown (assumed yes).
    pub supports_tools: Option<bool>,
}

pub struct Registry {
    models: Vec<ModelEntry>,
    by_name: HashMap<String, usize>,
    /// Names already warned about falling back to the default model: an agent naming a tier
    /// this site has no model for would otherwise log a line on every chat.
    warned: Mutex<HashSet<String>>,
}

impl Registry {
    /// Build from config, logging a warning for each disabled provider. Contacts nothing.
    pub fn new(config: &Config, env: &EnvLookup) -> Registry {
        let providers: HashMap<String, Arc<Provider>> = config
            .providers
            .iter()
            .map(|p| {
                let provider = Provider::new(p, env);
                if let Some(reason) = provider.disabled_reason() {
                    tracing::warn!(provider = %p.name, "provider disabled: {reason}");
                }
                (p.name.clone(), Arc::new(provider))
            })
            .collect();
        let mut models = Vec::new();
        for m in &config.models {
            let Some(provider) = providers.get(&m.provider) else { continue };
            // What the provider's own model list says about this model id.
            let listed = config
                .providers
                .iter()
                .filter(|p| p.name == m.provider)
                .flat_map(|p| &p.models)
                .find(|pm| pm.id == m.model_id);
            models.push(ModelEntry {
                name: m.name.clone(),
                provider: provider.clone(),
                model_id: m.model_id.clone(),
                context_length: m.context_length.or_else(|| listed.and_then(|pm| pm.context_length)),
                tier: m.tier.or_else(|| Tier::parse(&m.name)),
                temperature: m.temperature,
                max_tokens: m.max_tokens,
                supports_tools: m.supports_tools.or_else(|| listed.and_then(|pm| pm.supports_tools)),
            });
        }
        for p in &config.providers {
            let Some(provider) = providers.get(&p.name) else { continue };
            for pm in &p.models {
                let name = pm.name.clone().unwrap_or_else(|| pm.id.clone());
                if models.iter().any(|m| m.name == name) {
                    continue;
                }
                models.push(ModelEntry {
                    name,
                    provider: provider.clone(),
                    model_id: pm.id.clone(),
                    context_length: pm.context_length,
                    tier: pm.tier,
                    temperature: None,
                    max_tokens: None,
                    supports_tools: pm.supports_tools,
                });
            }
        }
        let by_name = models.iter().enumerate().map(|(i, m)| (m.name.clone(), i)).collect();
        Registry { models, by_name, warned: Mutex::default() }
    }

    pub fn models(&self) -> &[ModelEntry] {
        &self.models
    }

    /// The model a client or an agent names: a configured model name, a provider-side model
    /// id, or a tier (`fast`, `balanced`, …: the first model declaring it, in config order).
    /// `None` if nothing answers to the name.
    pub fn lookup(&self, name: &str) -> Option<&ModelEntry> {
        self.by_name
            .get(name)
            .and_then(|i| self.models.get(*i))
            .or_else(|| self.models.iter().find(|m| m.model_id == name))
            .or_else(|| Tier::parse(name).and_then(|tier| self.models.iter().find(|m| m.tier == Some(tier))))
    }

    /// The tiers some configured model serves, in `Tier::ALL` order.
    pub fn tiers(&self) -> Vec<Tier> {
        Tier::ALL.into_iter().filter(|tier| self.models.iter().any(|m| m.tier == Some(*tier))).collect()
    }

    /// The model for an agent's `model` setting: a model name, a tier, or nothing (default).
    /// A tier without a model, or an unknown name, falls back to the default model with a
    /// warning, so a template naming another site's models still runs.
    pub fn resolve(&self, wanted: Option<&str>) -> Result<&ModelEntry, LlmError> {
        let default = self.models.first().ok_or(LlmError::NothingConfigured)?;
        let Some(wanted) = wanted.filter(|w| !w.is_empty()) else {
            return Ok(default);
        };
        if let Some(model) = self.lookup(wanted) {
            return Ok(model);
        }
        if self.first_fallback(wanted) {
            if Tier::parse(wanted).is_some() {
                tracing::warn!(tier = wanted, fallback = %default.name, "no model serves this tier; using the default model");
            } else {
                tracing::warn!(model = wanted, fallback = %default.name, "unknown model; using the default model");
            }
        }
        Ok(default)
    }

    /// Whether `wanted` falls back to the default model for the first time in this process.
    fn first_fallback(&self, wanted: &str) -> bool {
        match self.warned.lock() {
            Ok(mut warned) => !warned.contains(wanted) && warned.insert(wanted.to_string()),
            Err(_) => false,
        }
    }
}
