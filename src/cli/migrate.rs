//! `ares migrate status|up`.

use super::{Failure, init_logging, load_config};
use crate::GlobalArgs;
use ares::store::{self, MigrationPolicy, MigrationStatus, Store, migrations};

pub fn status(global: &GlobalArgs) -> Result<(), Failure> {
    let loaded = load_config(global)?;
    init_logging(&loaded.config.server.log_level);
    let db_path = global.data_dir.join(store::DB_FILE);
    let rows = if db_path.exists() {
        match Store::inspect(&db_path) {
            Ok(rows) => rows,
            // The server holds the file: ask it.
            Err(store::Error::Locked { .. }) => through_server(global, &loaded.config)?,
            Err(e) => return Err(Failure::runtime(e)),
        }
    } else {
        println!("no database yet at {} (it is created on first start)", db_path.display());
        migrations::status_of_missing_file(migrations::MIGRATIONS)
    };
    print_table(&rows);
    Ok(())
}

pub fn up(global: &GlobalArgs) -> Result<(), Failure> {
    let loaded = load_config(global)?;
    init_logging(&loaded.config.server.log_level);
    let db_path = global.data_dir.join(store::DB_FILE);
    let before = if db_path.exists() {
        Store::inspect(&db_path).map_err(Failure::runtime)?
    } else {
        migrations::status_of_missing_file(migrations::MIGRATIONS)
    };
    let pending: Vec<u32> = before.iter().filter(|r| r.applied_at.is_none()).map(|r| r.version).collect();
    let store = Store::open(&db_path, MigrationPolicy::Apply).map_err(Failure::runtime)?;
    let after = store.migration_status().map_err(Failure::runtime)?;
    store.close();
    if pending.is_empty() {
        println!("database is up to date (schema version {})", migrations::latest(migrations::MIGRATIONS));
    } else {
        let list: Vec<String> = pending.iter().map(u32::to_string).collect();
        println!("applied migrations: {}", list.join(", "));
    }
    print_table(&after);
    Ok(())
}

/// The migrations of the database the running server holds, from `GET /api/admin/migrations`.
fn through_server(global: &GlobalArgs, config: &ares::config::Config) -> Result<Vec<MigrationStatus>, Failure> {
    let server = super::running::RunningServer::find(global, config)?;
    eprintln!("the database is open in the running server at {}; asking it", server.addr());
    let answer = server.call("GET", "/api/admin/migrations", std::time::Duration::from_secs(30))?;
    let rows = answer["migrations"].as_array().cloned().unwrap_or_default();
    Ok(rows
        .iter()
        .map(|row| MigrationStatus {
            version: row["version"].as_u64().unwrap_or_default() as u32,
            description: row["description"].as_str().unwrap_or_default().to_string(),
            checksum: String::new(),
            applied_at: row["applied_at_unix"].as_i64(),
        })
        .collect())
}

fn print_table(rows: &[MigrationStatus]) {
    println!("{:<8} {:<22} DESCRIPTION", "VERSION", "APPLIED_AT");
    for row in rows {
        let applied = row.applied_at.map_or_else(|| "pending".to_string(), ares::clock::rfc3339);
        println!("{:<8} {:<22} {}", row.version, applied, row.description);
    }
}
