//! Reading `ares.toml`: parse, name the key and line of a bad value, warn on unknown keys,
//! then validate once.

use std::path::{Path, PathBuf};

use super::keys::Locator;
use super::{Config, toon_dirs, validate};

/// How configuration reads the environment; tests pass a closure instead of mutating the
/// process environment (which is shared by every test thread).
pub type EnvLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

#[derive(Debug)]
pub struct LoadedConfig {
    pub config: Config,
    /// The file read, or `None` when the default path did not exist and defaults were used.
    pub path: Option<PathBuf>,
    /// Unknown keys and other non-fatal findings, to be logged once at start.
    pub warnings: Vec<String>,
    /// Informational one-liners (e.g. the ignored `[database]` section).
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{file} line {line}: {message}")]
    Parse { file: String, line: usize, message: String },
    #[error("{0}")]
    Validation(String),
    #[error("{message}")]
    Invalid { message: String },
}

/// Load `path` (or `./ares.toml` when `None`). An explicitly named file must exist; a missing
/// default file means "all defaults", so `cargo run` works in an empty directory.
pub fn load(path: Option<&Path>, env: &EnvLookup) -> Result<LoadedConfig, ConfigError> {
    let (path, explicit) = match path {
        Some(p) => (p.to_path_buf(), true),
        None => (PathBuf::from("ares.toml"), false),
    };
    let source = match std::fs::read_to_string(&path) {
        Ok(source) => source,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            let mut loaded = load_str("", "<defaults>", env)?;
            loaded.path = None;
            loaded
                .notes
                .push(format!("{} not found; using built-in defaults (run `ares init` to write one)", path.display()));
            return Ok(loaded);
        }
        Err(source) => return Err(ConfigError::Io { path, source }),
    };
    let file = path.display().to_string();
    let mut loaded = parse(&source, &file)?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    toon_dirs::merge(&mut loaded.config, &base, &mut loaded.warnings);
    super::pricing::load(&mut loaded.config.pricing, &base)?;
    let locator = Locator::new(&file, &source);
    validate::validate(&loaded.config, env, &locator, &mut loaded.warnings).map_err(ConfigError::Validation)?;
    loaded.path = Some(path);
    Ok(loaded)
}

/// Parse and validate config text (no `[config]` directories: they are relative to a file);
/// `file` is only used in messages.
pub fn load_str(source: &str, file: &str, env: &EnvLookup) -> Result<LoadedConfig, ConfigError> {
    let mut loaded = parse(source, file)?;
    let locator = Locator::new(file, source);
    validate::validate(&loaded.config, env, &locator, &mut loaded.warnings).map_err(ConfigError::Validation)?;
    Ok(loaded)
}

fn parse(source: &str, file: &str) -> Result<LoadedConfig, ConfigError> {
    let parse_error = |span: Option<std::ops::Range<usize>>, message: String| ConfigError::Parse {
        file: file.to_string(),
        line: span.map_or(0, |s| line_of(source, s.start)),
        message,
    };

    let deserializer =
        toml::de::Deserializer::parse(source).map_err(|e| parse_error(e.span(), e.message().trim().to_string()))?;

    let mut unknown = Vec::new();
    let mut record_unknown = |path: serde_ignored::Path<'_>| unknown.push(segments(&path));
    let tracked = serde_ignored::Deserializer::new(deserializer, &mut record_unknown);
    let config: Config = serde_path_to_error::deserialize(tracked).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().trim().to_string();
        let message = if key.is_empty() || key == "." { message } else { format!("{key}: {message}") };
        parse_error(inner.span(), message)
    })?;

    let warnings: Vec<String> =
        unknown.iter().map(|path| super::keys::unknown_key_warning(source, file, path)).collect();
    let mut notes = Vec::new();
    if config.database.is_some() {
        notes.push("[database] is ignored: storage is embedded (data/ares.redb)".to_string());
    }
    Ok(LoadedConfig { config, path: None, warnings, notes })
}

/// serde_ignored's path as keys and indexes from the root (`Option` and newtype levels are not
/// in the file).
fn segments(path: &serde_ignored::Path<'_>) -> Vec<String> {
    use serde_ignored::Path;
    let mut out = match path {
        Path::Root => return Vec::new(),
        Path::Seq { parent, .. }
        | Path::Map { parent, .. }
        | Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => segments(parent),
    };
    match path {
        Path::Seq { index, .. } => out.push(index.to_string()),
        Path::Map { key, .. } => out.push(key.clone()),
        _ => {}
    }
    out
}

/// 1-based line number of a byte offset.
pub(super) fn line_of(source: &str, offset: usize) -> usize {
    let end = offset.min(source.len());
    source.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}
