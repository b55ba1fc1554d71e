//! The `ares` command line: `serve` (the default), `init`, `migrate status|up`, `reindex`,
//! `backup`, `restore`, `import-postgres`, `export-postgres`.
//!
//! Exit codes: 0 success, 1 runtime failure (e.g. the data file is held by a running server),
//! 2 bad flags or bad configuration.

#![allow(clippy::print_stdout)]

mod cli;

/// jemalloc rather than glibc's malloc: measured faster on the hot paths (see Cargo.toml).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory as _, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ares", version, about = "ARES, embedded: the ARES agent platform in one binary")]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    /// For `ares --port P` with no subcommand, which serves.
    #[command(flatten)]
    listen: ListenArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Accepted by every subcommand.
#[derive(Args, Clone)]
pub struct GlobalArgs {
    /// Config file [default: ./ares.toml]
    #[arg(long, global = true, env = "ARES_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Data directory (database, secrets, indexes)
    #[arg(long, global = true, env = "ARES_DATA_DIR", value_name = "DIR", default_value = "data")]
    data_dir: PathBuf,
}

/// Where `serve` listens. Only `serve` takes them: every other command either works on the
/// data dir or finds the running server from `data/server.json`, so a `--port` there would
/// only look like it did something.
#[derive(Args, Clone, Default)]
pub struct ListenArgs {
    /// Bind address (overrides [server].host)
    #[arg(long)]
    host: Option<String>,
    /// Port (overrides [server].port and PORT)
    #[arg(long)]
    port: Option<u16>,
}

impl ListenArgs {
    fn is_set(&self) -> bool {
        self.host.is_some() || self.port.is_some()
    }

    /// `ares --port 1 serve --host h`: the subcommand's own flags win.
    fn or(self, outer: ListenArgs) -> ListenArgs {
        ListenArgs { host: self.host.or(outer.host), port: self.port.or(outer.port) }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (what runs with no subcommand)
    Serve(ListenArgs),
    /// Write a commented ares.toml if missing and create the data dir with generated secrets
    Init,
    /// Inspect or apply schema migrations of the data file
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Rebuild the search indexes (data/search, data/vectors) from the database, re-embedding
    /// collections whose embedder differs from the configured one (server must be stopped)
    Reindex,
    /// Write a consistent snapshot of the database into the backups directory (through the
    /// running server when there is one)
    Backup,
    /// Put a snapshot back (server stopped); the replaced database is kept beside it
    Restore {
        /// A backup directory (with ares.redb and manifest.json) or a .redb snapshot
        path: PathBuf,
    },
    /// Import a plain-format pg_dump of a Postgres-backed ARES database into the data dir
    #[command(name = "import-postgres")]
    ImportPostgres {
        /// The dump (`pg_dump --no-owner --no-privileges`, COPY or --inserts/--column-inserts)
        dump: PathBuf,
        /// Replace a data dir that already holds a database (it is kept beside the new one)
        #[arg(long)]
        force: bool,
    },
    /// Write the data as SQL that `psql -f` loads into the reference ARES Postgres schema
    #[command(name = "export-postgres")]
    ExportPostgres {
        /// Output file
        out: PathBuf,
    },
    /// Model prices for cost accounting
    #[command(subcommand)]
    Prices(PricesCommand),
    /// Write a sandboxed systemd unit for this binary and config (root), or print it
    #[command(name = "install-service")]
    InstallService {
        /// Print the unit and write nothing
        #[arg(long)]
        print: bool,
        /// The unit's name
        #[arg(long, default_value = "ares")]
        name: String,
        /// The binary the unit runs [default: this one]
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
        /// Where to write the unit
        #[arg(long, value_name = "DIR", default_value = cli::install_service::UNIT_DIR)]
        unit_dir: PathBuf,
        /// The environment file for secrets (created 0600 if missing)
        #[arg(long, value_name = "PATH", default_value = cli::install_service::ENV_FILE)]
        env_file: PathBuf,
        /// Where to write the polkit rule that lets the service restart its own unit
        #[arg(long, value_name = "DIR", default_value = cli::install_service::POLKIT_RULES_DIR)]
        polkit_dir: PathBuf,
    },
    /// MCP over stdio for Claude Desktop, Claude Code and other assistants: a bridge to the
    /// running server's /mcp, acting for the tenant key in ARES_API_KEY
    Mcp {
        /// The server's URL [default: the data dir's running server]
        #[arg(long, env = "ARES_URL", value_name = "URL")]
        url: Option<String>,
    },
    /// Check this install without changing it: config, secrets, data dir, disk, migrations,
    /// clock, port and upstreams; exit 1 if a check fails
    Doctor {
        /// Do not contact providers, embedders or rerankers
        #[arg(long)]
        offline: bool,
        /// One JSON report on stdout
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PricesCommand {
    /// Convert LiteLLM's model_prices_and_context_window.json into a prices file for
    /// `[pricing] file` (nothing is downloaded)
    Import {
        /// The LiteLLM JSON file
        file: PathBuf,
        /// Where to write the prices file
        #[arg(long, short, default_value = "prices.toml")]
        out: PathBuf,
        /// Keep only these provider model ids (repeatable)
        #[arg(long = "model")]
        models: Vec<String>,
    },
}

#[derive(Subcommand)]
enum MigrateCommand {
    /// List every migration with its applied time, or "pending"
    Status,
    /// Apply pending migrations
    Up,
}

fn main() -> ExitCode {
    // Before any thread or file exists: whatever the commands create is private to the owner.
    ares::private::restrict_umask();
    let cli = Cli::parse();
    let command = cli.command.unwrap_or_else(|| Command::Serve(ListenArgs::default()));
    if cli.listen.is_set() && !matches!(command, Command::Serve(_)) {
        Cli::command().error(ErrorKind::ArgumentConflict, "--host and --port apply only to `ares serve`").exit();
    }
    let outcome = match command {
        Command::Serve(listen) => cli::serve::run(&cli.global, &listen.or(cli.listen)),
        Command::Init => cli::init::run(&cli.global),
        Command::Migrate(MigrateCommand::Status) => cli::migrate::status(&cli.global),
        Command::Migrate(MigrateCommand::Up) => cli::migrate::up(&cli.global),
        Command::Reindex => cli::reindex::run(&cli.global),
        Command::Backup => cli::backup::backup(&cli.global),
        Command::ImportPostgres { dump, force } => cli::compat::import_postgres(&cli.global, &dump, force),
        Command::ExportPostgres { out } => cli::compat::export_postgres(&cli.global, &out),
        Command::Restore { path } => cli::backup::restore(&cli.global, &path),
        Command::Prices(PricesCommand::Import { file, out, models }) => cli::prices::import(&file, &out, &models),
        Command::Doctor { offline, json } => cli::doctor::run(&cli.global, offline, json),
        Command::Mcp { url } => cli::mcp::run(&cli.global, url),
        Command::InstallService { print, name, binary, unit_dir, env_file, polkit_dir } => {
            let options = cli::install_service::Options { print, name, binary, unit_dir, env_file, polkit_dir };
            cli::install_service::run(&cli.global, &options)
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}
