//! Providers → models → tiers, from the config. An agent names a model or a tier; this is where
//! that name becomes the deployments serving it (a provider and a provider-side model id each)
//! and the fallbacks tried after them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::error::LlmError;
use super::health::{BreakerPolicy, CircuitChanges, Health};
use super::provider::Provider;
use super::router::{Candidate, Deployment, Route};
use crate::config::{Config, DeploymentConfig, EnvLookup, ProviderConfig, Tier};
use crate::metering::cost::Prices;

/// A usable model: where it is served, and what to try when that fails.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    /// The name agents and clients use.
    pub name: String,
    /// The first deployment's provider and model id (what listings show).
    pub provider: Arc<Provider>,
    pub model_id: String,
    /// Its deployments, then its fallbacks': what the router tries.
    pub route: Arc<Route>,
    pub context_length: Option<u32>,
    pub tier: Option<Tier>,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    /// `None` = unknown (assumed yes).
    pub supports_tools: Option<bool>,
    /// What its tokens cost; zero for models without prices.
    pub prices: Prices,
}

pub struct Registry {
    models: Vec<ModelEntry>,
    by_name: HashMap<String, usize>,
    /// Every provider, in config order, with the deployments on it (for the admin view).
    providers: Vec<ProviderEntry>,
    /// Names already warned about falling back to the default model: an agent naming a tier
    /// this site has no model for would otherwise log a line on every chat.
    warned: Mutex<HashSet<String>>,
}

/// A provider and the deployments on it, as `(model name, deployment)`.
pub struct ProviderEntry {
    pub provider: Arc<Provider>,
    pub deployments: Vec<(String, Deployment)>,
}

/// One model as the config declares it, before its fallbacks are resolved.
struct Declared {
    entry: ModelEntry,
    deployments: Vec<Deployment>,
    fallbacks: Vec<String>,
}

/// Builds deployments, sharing one [`Health`] per provider and model id.
struct Deployments<'a> {
    providers: &'a HashMap<String, (Arc<Provider>, BreakerPolicy)>,
    health: HashMap<(String, String), Arc<Health>>,
    changes: Option<CircuitChanges>,
}

impl Deployments<'_> {
    fn build(&mut self, wanted: &DeploymentConfig) -> Option<Deployment> {
        let (provider, policy) = self.providers.get(&wanted.provider)?;
        let key = (wanted.provider.clone(), wanted.model_id.clone());
        let health = self
            .health
            .entry(key)
            .or_insert_with(|| Arc::new(Health::new(&wanted.provider, &wanted.model_id, *policy, self.changes.clone())))
            .clone();
        Some(Deployment {
            provider: provider.clone(),
            model_id: wanted.model_id.clone(),
            weight: wanted.weight,
            health,
        })
    }
}

fn breaker_policy(config: &ProviderConfig) -> BreakerPolicy {
    BreakerPolicy {
        failures: config.breaker_failures.max(1),
        cooldown: Duration::from_secs(config.breaker_cooldown_secs),
    }
}

impl Registry {
    /// Build from config, logging a warning for each disabled provider. Contacts nothing.
    /// Circuits that open or close are reported to `changes`. After a reload, deployments
    /// still configured with the same breaker policy keep `previous`'s circuit state.
    pub fn new(
        config: &Config,
        env: &EnvLookup,
        changes: Option<CircuitChanges>,
        previous: Option<&Registry>,
    ) -> Registry {
        let providers: HashMap<String, (Arc<Provider>, BreakerPolicy)> = config
            .providers
            .iter()
            .map(|p| {
                let provider = Provider::new(p, env);
                if let Some(reason) = provider.disabled_reason() {
                    tracing::warn!(provider = %p.name, "provider disabled: {reason}");
                }
                (p.name.clone(), (Arc::new(provider), breaker_policy(p)))
            })
            .collect();
        let mut health = HashMap::new();
        for entry in previous.map(|r| r.providers.as_slice()).unwrap_or_default() {
            for (_, deployment) in &entry.deployments {
                let key = (entry.provider.name.clone(), deployment.model_id.clone());
                let same_policy =
                    providers.get(&key.0).is_some_and(|(_, policy)| *policy == deployment.health.policy());
                if same_policy {
                    health.insert(key, deployment.health.clone());
                }
            }
        }
        let mut deployments = Deployments { providers: &providers, health, changes };
        let mut declared: Vec<Declared> = Vec::new();
        for m in &config.models {
            let built: Vec<Deployment> = m.deployments().iter().filter_map(|d| deployments.build(d)).collect();
            let Some(first) = built.first() else { continue };
            // What the first provider's own model list says about this model id.
            let listed = config
                .providers
                .iter()
                .filter(|p| p.name == first.provider.name)
                .flat_map(|p| &p.models)
                .find(|pm| pm.id == first.model_id);
            declared.push(Declared {
                entry: ModelEntry {
                    name: m.name.clone(),
                    provider: first.provider.clone(),
                    model_id: first.model_id.clone(),
                    route: Arc::new(Route { candidates: Vec::new() }),
                    context_length: m
                        .context_length
                        .or_else(|| listed.and_then(|pm| pm.context_length))
                        .or_else(|| config.pricing.context_length(&first.model_id)),
                    tier: m.tier.or_else(|| Tier::parse(&m.name)),
                    temperature: m.temperature,
                    max_tokens: m.max_tokens,
                    supports_tools: m.supports_tools.or_else(|| listed.and_then(|pm| pm.supports_tools)),
                    prices: Prices::per_mtok(m.input_usd_per_mtok, m.output_usd_per_mtok, m.cached_input_usd_per_mtok)
                        .or_else(|| config.pricing.lookup(&first.model_id))
                        .unwrap_or_default(),
                },
                deployments: built,
                fallbacks: m.fallbacks.clone(),
            });
        }
        for p in &config.providers {
            for pm in &p.models {
                let name = pm.name.clone().unwrap_or_else(|| pm.id.clone());
                if declared.iter().any(|d| d.entry.name == name) {
                    continue;
                }
                let wanted = DeploymentConfig { provider: p.name.clone(), model_id: pm.id.clone(), weight: 1 };
                let Some(deployment) = deployments.build(&wanted) else { continue };
                declared.push(Declared {
                    entry: ModelEntry {
                        name,
                        provider: deployment.provider.clone(),
                        model_id: pm.id.clone(),
                        route: Arc::new(Route { candidates: Vec::new() }),
                        context_length: pm.context_length,
                        tier: pm.tier,
                        temperature: None,
                        max_tokens: None,
                        supports_tools: pm.supports_tools,
                        prices: config.pricing.lookup(&pm.id).unwrap_or_default(),
                    },
                    deployments: vec![deployment],
                    fallbacks: Vec::new(),
                });
            }
        }
        let mut registry = Registry {
            models: declared.iter().map(|d| d.entry.clone()).collect(),
            by_name: HashMap::new(),
            providers: Vec::new(),
            warned: Mutex::default(),
        };
        registry.by_name = registry.models.iter().enumerate().map(|(i, m)| (m.name.clone(), i)).collect();
        // Routes: the model's own deployments, then each fallback's (not the fallbacks' own
        // fallbacks: the chain an operator reads in the config is the chain that runs).
        let candidate = |d: &Declared| Candidate {
            name: d.entry.name.clone(),
            deployments: d.deployments.clone(),
            context_length: d.entry.context_length,
            prices: d.entry.prices,
        };
        let routes: Vec<Route> = declared
            .iter()
            .map(|d| {
                let mut candidates = vec![candidate(d)];
                for name in &d.fallbacks {
                    let found = registry.lookup(name).and_then(|m| declared.iter().find(|x| x.entry.name == m.name));
                    match found {
                        Some(fallback) if fallback.entry.name != d.entry.name => candidates.push(candidate(fallback)),
                        _ => tracing::warn!(model = %d.entry.name, fallback = %name, "fallback names no other model; skipped"),
                    }
                }
                Route { candidates }
            })
            .collect();
        for (model, route) in registry.models.iter_mut().zip(routes) {
            model.route = Arc::new(route);
        }
        registry.providers = config
            .providers
            .iter()
            .filter_map(|p| providers.get(&p.name))
            .map(|(provider, _)| ProviderEntry {
                provider: provider.clone(),
                deployments: declared
                    .iter()
                    .flat_map(|d| d.deployments.iter().map(|dep| (d.entry.name.clone(), dep.clone())))
                    .filter(|(_, dep)| Arc::ptr_eq(&dep.provider, provider))
                    .collect(),
            })
            .collect();
        registry
    }

    /// Every provider with the deployments on it.
    pub fn providers(&self) -> &[ProviderEntry] {
        &self.providers
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
