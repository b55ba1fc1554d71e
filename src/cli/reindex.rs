//! `ares reindex`: rebuild the derived search indexes from the database.

use super::{Failure, init_logging, load_config, process_env};
use crate::GlobalArgs;
use ares::store::{self, MigrationPolicy, Store};

pub fn run(global: &GlobalArgs) -> Result<(), Failure> {
    let loaded = load_config(global)?;
    init_logging(&loaded.config.server.log_level);
    let db_path = global.data_dir.join(store::DB_FILE);
    if !db_path.exists() {
        return Err(Failure::runtime(format!("no database at {}; nothing to reindex", db_path.display())));
    }
    // Opening takes the file lock, so a running server makes this fail before anything changes.
    let store = Store::open(&db_path, MigrationPolicy::Apply).map_err(Failure::runtime)?;
    let outcome = ares::rag::reindex(&loaded.config.rag, &global.data_dir, &store, &process_env);
    store.close();
    let report = outcome.map_err(Failure::runtime)?;
    println!(
        "reindexed {} chunks in {} collections ({} re-embedded) in {} ms",
        report.chunks, report.collections, report.reembedded, report.elapsed_ms
    );
    Ok(())
}
