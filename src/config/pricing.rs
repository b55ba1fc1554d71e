//! `[pricing].file`: prices by provider model id, kept apart from `[[models]]` so a price list
//! can be imported and updated without touching the models an operator configured. Written by
//! `ares prices import` from a LiteLLM `model_prices_and_context_window.json`; nothing is ever
//! downloaded.
//!
//! A model's own prices (`input_usd_per_mtok`, … in `[[models]]` or its TOON file) win; a model
//! without any takes its first deployment's model id's entry here; a model with neither costs
//! nothing.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::load::ConfigError;
use crate::metering::cost::Prices;

/// `[pricing]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PricingConfig {
    /// A prices file (relative to ares.toml), as `ares prices import` writes it.
    pub file: Option<String>,
    /// The file's entries, by provider model id (read at load).
    #[serde(skip)]
    pub table: BTreeMap<String, ModelPrice>,
}

/// One model id's prices in dollars per million tokens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_usd_per_mtok: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_usd_per_mtok: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_usd_per_mtok: Option<f64>,
    /// Used as the model's `context_length` when it sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u32>,
}

impl PricingConfig {
    pub fn lookup(&self, model_id: &str) -> Option<Prices> {
        let entry = self.table.get(model_id)?;
        Prices::per_mtok(entry.input_usd_per_mtok, entry.output_usd_per_mtok, entry.cached_input_usd_per_mtok)
    }

    pub fn context_length(&self, model_id: &str) -> Option<u32> {
        self.table.get(model_id).and_then(|entry| entry.context_length)
    }
}

/// Read `[pricing].file` (relative to `base`, the config file's directory) into the table.
pub(super) fn load(pricing: &mut PricingConfig, base: &Path) -> Result<(), ConfigError> {
    let Some(file) = &pricing.file else { return Ok(()) };
    let path = base.join(file);
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io { path: path.clone(), source })?;
    pricing.table = parse(&text)
        .map_err(|message| ConfigError::Invalid { message: format!("pricing.file {}: {message}", path.display()) })?;
    for (model_id, entry) in &pricing.table {
        for (key, price) in [
            ("input_usd_per_mtok", entry.input_usd_per_mtok),
            ("output_usd_per_mtok", entry.output_usd_per_mtok),
            ("cached_input_usd_per_mtok", entry.cached_input_usd_per_mtok),
        ] {
            if let Some(price) = price
                && !(price.is_finite() && price >= 0.0)
            {
                return Err(ConfigError::Invalid {
                    message: format!(
                        "pricing.file {}: \"{model_id}\".{key} must be a price ≥ 0, not {price}",
                        path.display()
                    ),
                });
            }
        }
    }
    Ok(())
}

fn parse(text: &str) -> Result<BTreeMap<String, ModelPrice>, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

/// What an import made of a LiteLLM price list.
pub struct Imported {
    pub table: BTreeMap<String, ModelPrice>,
    /// Entries without any token price (image, audio, embedding-only, the sample spec).
    pub skipped: usize,
}

/// Read LiteLLM's `model_prices_and_context_window.json`: per model id, `input_cost_per_token`,
/// `output_cost_per_token`, `cache_read_input_token_cost` (dollars per token) and
/// `max_input_tokens`. Prices are converted to dollars per million tokens, rounded to the
/// pico-dollar per token (the precision costs are computed in).
pub fn import_litellm(json: &str) -> Result<Imported, String> {
    let root: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let models = root.as_object().ok_or("expected a JSON object of model ids")?;
    let mut table = BTreeMap::new();
    let mut skipped = 0;
    for (id, spec) in models {
        let per_mtok = |key: &str| {
            spec.get(key).and_then(serde_json::Value::as_f64).map(|per_token| (per_token * 1e12).round() / 1e6)
        };
        let entry = ModelPrice {
            input_usd_per_mtok: per_mtok("input_cost_per_token"),
            output_usd_per_mtok: per_mtok("output_cost_per_token"),
            cached_input_usd_per_mtok: per_mtok("cache_read_input_token_cost"),
            context_length: spec
                .get("max_input_tokens")
                .and_then(serde_json::Value::as_u64)
                .and_then(|n| u32::try_from(n).ok()),
        };
        if id == "sample_spec" || (entry.input_usd_per_mtok.is_none() && entry.output_usd_per_mtok.is_none()) {
            skipped += 1;
            continue;
        }
        table.insert(id.clone(), entry);
    }
    Ok(Imported { table, skipped })
}

/// The prices file for `table`, with a header saying where it came from.
pub fn render(table: &BTreeMap<String, ModelPrice>, source: &str) -> Result<String, String> {
    let body = toml::to_string(table).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Model prices in dollars per million tokens, by provider model id, imported by\n\
         # `ares prices import` from {source}. Include it with [pricing] file = \"<this file>\".\n\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn litellm_prices_become_dollars_per_million_tokens_and_read_back() {
        let json = r#"{
            "sample_spec": {"input_cost_per_token": 0, "output_cost_per_token": 0},
            "gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
                       "cache_read_input_token_cost": 1.25e-06, "max_input_tokens": 128000, "mode": "chat"},
            "claude-3-5-haiku-20241022": {"input_cost_per_token": 8e-07, "output_cost_per_token": 4e-06,
                       "cache_read_input_token_cost": 8e-08},
            "dall-e-3": {"output_cost_per_image": 0.04}
        }"#;
        let imported = import_litellm(json).unwrap();
        assert_eq!(imported.skipped, 2);
        let gpt = &imported.table["gpt-4o"];
        assert_eq!(
            (gpt.input_usd_per_mtok, gpt.output_usd_per_mtok, gpt.cached_input_usd_per_mtok, gpt.context_length),
            (Some(2.5), Some(10.0), Some(1.25), Some(128_000))
        );
        let text = render(&imported.table, "test.json").unwrap();
        let pricing = PricingConfig { file: None, table: parse(&text).unwrap() };
        let haiku = pricing.lookup("claude-3-5-haiku-20241022").unwrap();
        assert_eq!((haiku.input, haiku.output, haiku.cached_input), (800_000, 4_000_000, 80_000));
        assert!(pricing.lookup("llama3.2").is_none());
    }
}
