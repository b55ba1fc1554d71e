//! `ares backup` and `ares restore PATH`.

use std::path::Path;
use std::time::Duration;

use super::{Failure, init_logging, load_config, process_env};
use crate::GlobalArgs;
use ares::auth::secrets;
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
    let server_file = global.data_dir.join(super::serve::SERVER_FILE);
    let info: serde_json::Value =
        std::fs::read(&server_file).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).ok_or_else(|| {
            Failure::runtime(format!(
                "the database is in use but {} does not say where the server listens",
                server_file.display()
            ))
        })?;
    let addr = info.get("addr").and_then(serde_json::Value::as_str).unwrap_or_default().to_string();
    let (admin_secret, source) =
        secrets::find_admin_secret(&config.auth, &global.data_dir, &process_env).ok_or_else(|| {
            Failure::runtime(format!(
                "the server is running but no admin secret was found: set ADMIN_API_KEY (or ${}) as the server has it, \
                 or keep it in {}",
                config.auth.api_key_env,
                global.data_dir.join("secrets/admin_secret").display()
            ))
        })?;
    let source = match &source {
        secrets::SecretSource::Env(name) => format!("${name}"),
        secrets::SecretSource::File(path) | secrets::SecretSource::Generated(path) => path.display().to_string(),
    };
    eprintln!("backing up through the running server at {addr}, with the admin secret from {source}");
    let url = format!("http://{addr}/api/admin/backup");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(3600)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(&url)
        .header("X-Admin-Secret", &admin_secret)
        .send_empty()
        .map_err(|e| Failure::runtime(format!("cannot reach the running server at {url}: {e}")))?;
    let status = response.status();
    let body = response.body_mut().read_to_string().map_err(|e| Failure::runtime(e.to_string()))?;
    if status.as_u16() == 401 || status.as_u16() == 403 {
        return Err(Failure::runtime(format!(
            "the server refused the admin secret from {source} (HTTP {}): set ADMIN_API_KEY to the secret the server runs with",
            status.as_u16()
        )));
    }
    if !status.is_success() {
        return Err(Failure::runtime(format!("the server answered {}: {body}", status.as_u16())));
    }
    serde_json::from_str(&body).map_err(|e| Failure::runtime(format!("unexpected answer from the server: {e}")))
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
