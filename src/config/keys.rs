//! Where a key is in `ares.toml`, for messages that name its line, and what an unknown key
//! probably meant.
//!
//! An unknown key is ignored with a warning (a config written for a newer server, or for the
//! reference server, still starts), so the warning must be good enough to fix a typo from:
//! the line, and the nearest key that section knows. The known keys come from each section
//! type's own `Deserialize` derive, so they cannot drift from what is parsed.

use serde::Deserialize;
use serde::de::{self, Visitor};
use toml::de::{DeTable, DeValue};

use super::{
    AgentConfig, AuthConfig, ChatConfig, Config, ConfigDirs, DeployConfig, DeployTarget, DeploymentConfig,
    EmbedderConfig, LimitsConfig, McpConfig, McpServerConfig, MemoryConfig, MetricsConfig, ModelConfig,
    ObservabilityConfig, PricingConfig, ProviderConfig, ProviderModel, QuotaConfig, RagConfig, ServerConfig,
    ServiceConfig, StorageConfig, TierLimits, ToolConfig, ToonPrompt, WorkflowConfig,
};

/// How alike a key must be to a known one to be suggested (Jaro-Winkler, as clap uses for
/// mistyped flags): catches transpositions and dropped letters, not unrelated words.
const SUGGEST_ABOVE: f64 = 0.8;

/// The warning for one unknown key: `path` is serde_ignored's (map keys and sequence indexes
/// from the root), `source` the file's text.
pub(super) fn unknown_key_warning(source: &str, file: &str, path: &[String]) -> String {
    let dotted = path.join(".");
    let place = match line_of_key(source, path) {
        Some(line) => format!("{file} line {line}"),
        None => file.to_string(),
    };
    let Some((key, parent)) = path.split_last() else {
        return format!("{place}: unknown key `{dotted}` ignored");
    };
    let parent: Vec<&str> = parent.iter().map(String::as_str).collect();
    match known_keys(&parent).and_then(|known| nearest(key, known)) {
        Some(meant) => format!("{place}: unknown key `{dotted}` ignored (did you mean `{meant}`?)"),
        None => format!("{place}: unknown key `{dotted}` ignored"),
    }
}

/// The keys the section at `parent` accepts; `None` where the section is free-form (tool and
/// deploy-target `env` tables, `[database]`) or unknown itself.
fn known_keys(parent: &[&str]) -> Option<&'static [&'static str]> {
    Some(match parent {
        [] => fields_of::<Config>(),
        ["server"] => fields_of::<ServerConfig>(),
        ["auth"] => fields_of::<AuthConfig>(),
        ["storage"] => fields_of::<StorageConfig>(),
        ["providers", _] => fields_of::<ProviderConfig>(),
        ["providers", _, "models", _] => fields_of::<ProviderModel>(),
        ["models", _] => fields_of::<ModelConfig>(),
        ["models", _, "deployments", _] => fields_of::<DeploymentConfig>(),
        ["agents", _] => fields_of::<AgentConfig>(),
        ["agents", _, "toon"] => fields_of::<ToonPrompt>(),
        ["workflows", _] => fields_of::<WorkflowConfig>(),
        ["tools", _] => fields_of::<ToolConfig>(),
        ["rag"] => fields_of::<RagConfig>(),
        ["rag", "embedder"] => fields_of::<EmbedderConfig>(),
        ["deploy"] => fields_of::<DeployConfig>(),
        ["deploy", "targets", _] => fields_of::<DeployTarget>(),
        ["services", _] => fields_of::<ServiceConfig>(),
        ["config"] => fields_of::<ConfigDirs>(),
        ["quotas"] => fields_of::<QuotaConfig>(),
        ["quotas", _] => fields_of::<TierLimits>(),
        ["memory"] => fields_of::<MemoryConfig>(),
        ["limits"] => fields_of::<LimitsConfig>(),
        ["observability"] => fields_of::<ObservabilityConfig>(),
        ["metrics"] => fields_of::<MetricsConfig>(),
        ["pricing"] => fields_of::<PricingConfig>(),
        ["chat"] => fields_of::<ChatConfig>(),
        ["mcp"] => fields_of::<McpConfig>(),
        ["mcp", "servers", _] => fields_of::<McpServerConfig>(),
        _ => return None,
    })
}

fn nearest(key: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|candidate| (strsim::jaro_winkler(key, candidate), *candidate))
        .filter(|(score, _)| *score > SUGGEST_ABOVE)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// The field names a derived `Deserialize` struct passes to `deserialize_struct`.
fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut probe = FieldsProbe { fields: &[] };
    // The probe always fails after recording: it has no data to give.
    let _ = T::deserialize(&mut probe);
    probe.fields
}

struct FieldsProbe {
    fields: &'static [&'static str],
}

impl<'de> de::Deserializer<'de> for &mut FieldsProbe {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("a struct's fields are only listed"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.fields = fields;
        Err(de::Error::custom("a struct's fields are only listed"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// The 1-based line of the key at `path`, found in the parsed document's spans.
fn line_of_key(source: &str, path: &[String]) -> Option<usize> {
    let document = DeTable::parse(source).ok()?;
    let span = key_span(document.get_ref(), path)?;
    Some(super::load::line_of(source, span.start))
}

/// Where a validation message points: the file's lines of named entries' keys. Entries merged
/// from the `[config]` directories are not in the file and get no line.
pub(super) struct Locator<'a> {
    file: &'a str,
    source: &'a str,
}

impl<'a> Locator<'a> {
    pub(super) fn new(file: &'a str, source: &'a str) -> Self {
        Locator { file, source }
    }

    /// `ares.toml line N: ` for `key` of the entry called `name` in `section`, written either
    /// as `[[section]] name = "…"` or as `[section.name]`; `None` when the file does not hold
    /// that entry (it came from a TOON directory).
    pub(super) fn entry_key(&self, section: &str, name: &str, key: &str) -> Option<String> {
        let document = DeTable::parse(self.source).ok()?;
        let (_, entries) = document.get_ref().iter().find(|(k, _)| k.get_ref().as_ref() == section)?;
        let entry = match entries.get_ref() {
            DeValue::Array(items) => items.iter().find_map(|item| match item.get_ref() {
                DeValue::Table(table) if string_at(table, "name") == Some(name) => Some(table),
                _ => None,
            })?,
            DeValue::Table(by_name) => match by_name.iter().find(|(k, _)| k.get_ref().as_ref() == name)?.1.get_ref() {
                DeValue::Table(table) => table,
                _ => return None,
            },
            _ => return None,
        };
        let (key, _) = entry.iter().find(|(k, _)| k.get_ref().as_ref() == key)?;
        let line = super::load::line_of(self.source, key.span().start);
        Some(format!("{} line {line}: ", self.file))
    }
}

fn string_at<'t>(table: &'t DeTable<'_>, key: &str) -> Option<&'t str> {
    match table.iter().find(|(k, _)| k.get_ref().as_ref() == key)?.1.get_ref() {
        DeValue::String(value) => Some(value.as_ref()),
        _ => None,
    }
}

fn key_span(table: &DeTable<'_>, path: &[String]) -> Option<std::ops::Range<usize>> {
    let (first, rest) = path.split_first()?;
    let (key, value) = table.iter().find(|(key, _)| key.get_ref().as_ref() == first.as_str())?;
    if rest.is_empty() {
        return Some(key.span());
    }
    match value.get_ref() {
        DeValue::Table(inner) => key_span(inner, rest),
        // `[[providers]]`: the next segment is the element's index.
        DeValue::Array(items) => {
            let (index, rest) = rest.split_first()?;
            match items.get(index.parse::<usize>().ok()?)?.get_ref() {
                DeValue::Table(inner) => key_span(inner, rest),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_of_the_config_knows_its_keys() {
        // A new section added to `Config` without an entry here would get no suggestions.
        for section in fields_of::<Config>() {
            if *section == "database" {
                continue; // free-form and ignored: storage is embedded
            }
            let known = known_keys(&[section]).or_else(|| known_keys(&[section, "item"]));
            assert!(known.is_some_and(|k| !k.is_empty()), "[{section}] has no known keys");
        }
        assert!(fields_of::<ServerConfig>().contains(&"log_level"));
    }

    #[test]
    fn names_the_line_and_the_nearest_key() {
        let source = "[server]\nport = 3000\nlog_levl = \"debug\"\n\n[[agents]]\nname = \"a\"\nmodle = \"fast\"\n";
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            unknown_key_warning(source, "ares.toml", &path(&["server", "log_levl"])),
            "ares.toml line 3: unknown key `server.log_levl` ignored (did you mean `log_level`?)"
        );
        assert_eq!(
            unknown_key_warning(source, "ares.toml", &path(&["agents", "0", "modle"])),
            "ares.toml line 7: unknown key `agents.0.modle` ignored (did you mean `model`?)"
        );
        let unrelated = "[server]\nflavour = 1\n";
        assert_eq!(
            unknown_key_warning(unrelated, "f.toml", &path(&["server", "flavour"])),
            "f.toml line 2: unknown key `server.flavour` ignored"
        );
        let table_form = "[providers.local]\ntype = \"ollama\"\nbase_ur = \"http://x\"\n";
        assert!(
            unknown_key_warning(table_form, "f.toml", &path(&["providers", "local", "base_ur"]))
                .ends_with("line 3: unknown key `providers.local.base_ur` ignored (did you mean `base_url`?)")
        );
        assert!(unknown_key_warning("[servr]\n", "f.toml", &path(&["servr"])).contains("line 1"));
        assert!(unknown_key_warning("[servr]\n", "f.toml", &path(&["servr"])).contains("`server`"));
    }
}
