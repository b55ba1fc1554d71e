//! `ares import-postgres DUMP.sql` and `ares export-postgres OUT.sql`.

use std::io::{BufWriter, Write as _};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

use super::{Failure, init_logging, load_config};
use crate::GlobalArgs;
use ares::compat::{export, import};
use ares::store::{self, MigrationPolicy, Store};

pub fn import_postgres(global: &GlobalArgs, dump: &Path, force: bool) -> Result<(), Failure> {
    let loaded = load_config(global)?;
    init_logging(&loaded.config.server.log_level);
    let total = std::fs::metadata(dump).map_err(|e| Failure::runtime(format!("{}: {e}", dump.display())))?.len();
    // indicatif draws only when stderr is a terminal.
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} importing [{bar:40}] {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let outcome = import::import(dump, &global.data_dir, force, &mut |bytes| bar.set_position(bytes));
    bar.finish_and_clear();
    let report = outcome.map_err(|e| match e {
        import::ImportError::NotEmpty(_) => Failure::usage(e),
        other => Failure::runtime(other),
    })?;
    println!(
        "imported {} into {} in {} ms",
        dump.display(),
        global.data_dir.join(store::DB_FILE).display(),
        report.elapsed_ms
    );
    println!("{:<24} ROWS", "TABLE");
    for (table, rows) in &report.rows {
        println!("{table:<24} {rows}");
    }
    for (table, (rows, why)) in &report.raw_only {
        println!("note: {rows} {table} row(s) kept for export only: {why}");
    }
    for (table, rows) in &report.unknown_tables {
        println!("note: unknown table {table} ({rows} rows) was not imported");
    }
    if let Some(previous) = &report.previous {
        println!("the replaced database was kept as {}", previous.display());
    }
    println!(
        "API keys and passwords keep working; set JWT_SECRET to the old server's to keep its refresh tokens valid"
    );
    Ok(())
}

pub fn export_postgres(global: &GlobalArgs, out: &Path) -> Result<(), Failure> {
    let loaded = load_config(global)?;
    init_logging(&loaded.config.server.log_level);
    let db_path = global.data_dir.join(store::DB_FILE);
    if !db_path.exists() {
        return Err(Failure::runtime(format!("no database at {}; nothing to export", db_path.display())));
    }
    // Exclusive while it runs: a running server must be stopped (or back it up and export the copy).
    let store = Store::open(&db_path, MigrationPolicy::Apply).map_err(Failure::runtime)?;
    let staging = out.with_extension("sql.partial");
    let result = (|| {
        let file =
            std::fs::File::create(&staging).map_err(|e| Failure::runtime(format!("{}: {e}", staging.display())))?;
        let mut writer = BufWriter::new(file);
        let report = export::export(&store, &mut writer).map_err(Failure::runtime)?;
        writer.flush().map_err(|e| Failure::runtime(e.to_string()))?;
        std::fs::rename(&staging, out).map_err(|e| Failure::runtime(format!("{}: {e}", out.display())))?;
        Ok(report)
    })();
    store.close();
    let report = result.inspect_err(|_: &Failure| {
        let _ = std::fs::remove_file(&staging);
    })?;
    println!("exported to {} (load with: psql -v ON_ERROR_STOP=1 -f {})", out.display(), out.display());
    println!("{:<24} ROWS", "TABLE");
    for (table, rows) in &report.rows {
        println!("{table:<24} {rows}");
    }
    if report.skipped_tenant_conversations > 0 {
        println!(
            "note: {} conversation(s) of API-key callers have no place in the reference schema and were left out",
            report.skipped_tenant_conversations
        );
    }
    Ok(())
}
