//! `ares prices import FILE`: turn LiteLLM's `model_prices_and_context_window.json` (a file
//! the operator fetched, or one shipped with their install) into a prices file for
//! `[pricing].file`. Nothing is downloaded: an air-gapped site brings the file.

use std::path::Path;

use super::Failure;

pub fn import(source: &Path, out: &Path, only: &[String]) -> Result<(), Failure> {
    let json = std::fs::read_to_string(source)
        .map_err(|e| Failure::usage(format!("cannot read {}: {e}", source.display())))?;
    let mut imported = ares::config::pricing::import_litellm(&json)
        .map_err(|e| Failure::usage(format!("{}: {e}", source.display())))?;
    if !only.is_empty() {
        let missing: Vec<&String> = only.iter().filter(|id| !imported.table.contains_key(*id)).collect();
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            return Err(Failure::usage(format!("no price in {} for: {}", source.display(), names.join(", "))));
        }
        imported.table.retain(|id, _| only.contains(id));
    }
    let text =
        ares::config::pricing::render(&imported.table, &source.display().to_string()).map_err(Failure::runtime)?;
    std::fs::write(out, text).map_err(|e| Failure::runtime(format!("cannot write {}: {e}", out.display())))?;
    println!(
        "wrote prices of {} models to {} ({} entries without token prices skipped)",
        imported.table.len(),
        out.display(),
        imported.skipped
    );
    println!("use them with, in ares.toml:\n\n[pricing]\nfile = \"{}\"", out.display());
    Ok(())
}
