//! `ares backup` and `ares restore PATH`.

use std::path::Path;
use std::time::Duration;

use super::{Failure, init_logging, load_config};
use crate::GlobalArgs;
use ares::backup::{self, Manifest};
use ares::store::{self, MigrationPolicy, Store};

/// Through the running server when there is one (its file lock tells), else directly.
pub fn backup(global: &GlobalArgs) -> Result<(), Failure> {
    let loaded = load_config(global)?;
    init_logging(&loaded.config.server.log_level);
    let db_path = global.data_dir.join(store::DB_FILE);
    if !db_path.exists() {
        return Err(Failure::runtime(format!("no database at {}; nothing to back up", db_path.display())));
    }
    let dir = backup::backups_dir(loaded.config.storage.backups_dir.as_deref(), &global.data_dir);
    let manifest = match Store::open(&db_path, MigrationPolicy::Inspect) {
        Ok(store) => {
            let outcome = backup::create(&store, &dir);
            store.close();
            outcome.map_err(Failure::runtime)?
        }
        Err(store::Error::Locked { .. }) => through_server(global, &loaded.config)?,
        Err(e) => return Err(Failure::runtime(e)),
    };
    println!("backup written to {}", manifest.path.display());
    println!("  {} ({} bytes, schema version {})", manifest.file.display(), manifest.bytes, manifest.schema_version);
    Ok(())
}

fn through_server(global: &GlobalArgs, config: &ares::config::Config) -> Result<Manifest, Failure> {
    let server = super::running::RunningServer::find(global, config)?;
    eprintln!(
        "backing up through the running server at {}, with the admin secret from {}",
        server.addr(),
        server.source
    );
    let answer = server.call("POST", "/api/admin/backup", Duration::from_secs(3600))?;
    serde_json::from_value(answer).map_err(|e| Failure::runtime(format!("unexpected answer from the server: {e}")))
}

pub fn restore(global: &GlobalArgs, source: &Path) -> Result<(), Failure> {
    let loaded = load_config(global)?;
    init_logging(&loaded.config.server.log_level);
    if source.is_dir() && !source.join(store::DB_FILE).is_file() {
        let found = backup::snapshots_in(source);
        if found.is_empty() {
            return Err(Failure::usage(format!("{} holds no backup or snapshot", source.display())));
        }
        println!("{} is not a snapshot itself; it holds these, newest first:", source.display());
        for (path, modified, bytes) in &found {
            let at = modified.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
            println!("  {}  {}  {} bytes", ares::clock::rfc3339(at), path.display(), bytes);
        }
        return Err(Failure::usage("name one of them: ares restore PATH"));
    }
    let restored = backup::restore(source, &global.data_dir).map_err(Failure::runtime)?;
    println!("restored {} into {}", restored.from.display(), global.data_dir.join(store::DB_FILE).display());
    if let Some(previous) = restored.previous {
        println!("  the replaced database was kept as {}", previous.display());
    }
    println!("  search indexes will be rebuilt on the next start");
    Ok(())
}
