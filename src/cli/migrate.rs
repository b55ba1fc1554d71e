//! `ares migrate status|up`.

use super::{Failure, init_logging, load_config};
use crate::GlobalArgs;
use ares::store::{self, MigrationPolicy, MigrationStatus, Store, migrations};

pub fn status(global: &GlobalArgs) -> Result<(), Failure> {
    let loaded = load_config(global)?;
    init_logging(&loaded.config.server.log_level);
    let db_path = global.data_dir.join(store::DB_FILE);
    let rows = if db_path.exists() {
        Store::inspect(&db_path).map_err(Failure::runtime)?
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

fn print_table(rows: &[MigrationStatus]) {
    println!("{:<8} {:<22} DESCRIPTION", "VERSION", "APPLIED_AT");
    for row in rows {
        let applied = row.applied_at.map_or_else(|| "pending".to_string(), ares::clock::rfc3339);
        println!("{:<8} {:<22} {}", row.version, applied, row.description);
    }
}
