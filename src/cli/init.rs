//! `ares init`: write the commented default config if missing, create the data dir, generate
//! secrets and create the database at the current schema version.

use super::{Failure, init_logging, load_config, process_env};
use crate::GlobalArgs;
use ares::auth::secrets::{self, SecretSource};
use ares::store::{self, MigrationPolicy, Store};

pub fn run(global: &GlobalArgs) -> Result<(), Failure> {
    let path = global.config.clone().unwrap_or_else(|| "ares.toml".into());
    if path.exists() {
        println!("{} already exists; left unchanged", path.display());
    } else {
        std::fs::write(&path, ares::config::DEFAULT_CONFIG_TOML)
            .map_err(|e| Failure::runtime(format!("cannot write {}: {e}", path.display())))?;
        println!("wrote {}", path.display());
    }
    let global = GlobalArgs { config: Some(path), ..global.clone() };
    let loaded = load_config(&global)?;
    init_logging("warn");

    std::fs::create_dir_all(&global.data_dir)
        .map_err(|e| Failure::runtime(format!("cannot create {}: {e}", global.data_dir.display())))?;
    let secrets = secrets::resolve(&loaded.config.auth, &global.data_dir, &process_env).map_err(Failure::usage)?;
    match &secrets.admin_source {
        SecretSource::Generated(path) => {
            println!("Generated an admin secret (shown once): {}", secrets.admin_secret);
            println!("  stored in {} (mode 0600)", path.display());
        }
        SecretSource::File(path) => println!("admin secret: kept in {}", path.display()),
        SecretSource::Env(name) => println!("admin secret: from ${name}"),
    }
    match &secrets.jwt_source {
        SecretSource::Generated(path) => println!("generated a JWT signing secret in {}", path.display()),
        SecretSource::File(path) => println!("JWT signing secret: kept in {}", path.display()),
        SecretSource::Env(name) => println!("JWT signing secret: from ${name}"),
    }

    let db_path = global.data_dir.join(store::DB_FILE);
    let store = Store::open(&db_path, MigrationPolicy::Apply).map_err(Failure::runtime)?;
    store.close();
    println!("database ready at {}", db_path.display());
    Ok(())
}
