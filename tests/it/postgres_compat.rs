//! Moving from Postgres ARES (README "Moving from Postgres ARES"): `ares import-postgres` reads
//! plain `pg_dump` output and `ares export-postgres` writes SQL the reference schema loads.
//!
//! The main test runs a real, throw-away PostgreSQL 15 (`tests/postgres/pg_harness.sh`; it must
//! be available — `pg_harness.sh ensure` installs it or the test fails, it is never skipped),
//! seeds it with `tests/postgres/seed.sql` (known secrets in `seed_secrets.json`), takes the
//! three kinds of plain dumps with the real `pg_dump`, imports each, exports each back, loads
//! the export into a fresh database with the reference schema and compares it with the seeded
//! one, then serves the imported data with the real binary and checks it over HTTP: API keys,
//! passwords, tenant agents (listed and run against the mock provider), conversations in message
//! order and run totals. The other tests use the committed sample dumps (no server needed) to
//! check the import's refusals and failure modes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::gateway::{KEY_ENV, PROVIDER_KEY};
use crate::harness::{BinaryServer, CliOutput, expect_error, expect_json, run_cli};
use crate::mock_provider::{MockProvider, Wire};

// ---------------------------------------------------------------- fixtures and helpers

fn postgres_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/postgres")
}

fn fixture(name: &str) -> PathBuf {
    postgres_dir().join(name)
}

fn seed_secrets() -> Value {
    let path = fixture("seed_secrets.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("seed_secrets.json is JSON")
}

/// `expected.row_counts` of seed_secrets.json: every table of the reference schema.
fn expected_row_counts(secrets: &Value) -> BTreeMap<String, u64> {
    let counts: BTreeMap<String, u64> = secrets["expected"]["row_counts"]
        .as_object()
        .expect("expected.row_counts")
        .iter()
        .map(|(table, rows)| (table.clone(), rows.as_u64().expect("a row count")))
        .collect();
    assert_eq!(counts.len(), 23, "the reference schema has 23 tables: {counts:?}");
    counts
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// The `TABLE ROWS` listing that import and export print: one `name count` line per table
/// after the header.
fn printed_counts(stdout: &str) -> BTreeMap<String, u64> {
    let mut lines = stdout.lines().skip_while(|line| !(line.starts_with("TABLE") && line.ends_with("ROWS")));
    assert!(lines.next().is_some(), "no TABLE/ROWS listing in:\n{stdout}");
    lines
        .map_while(|line| {
            let mut parts = line.split_whitespace();
            let (table, rows, rest) = (parts.next()?, parts.next()?, parts.next());
            if rest.is_some() {
                return None;
            }
            Some((table.to_string(), rows.parse::<u64>().ok()?))
        })
        .collect()
}

fn assert_success(output: &CliOutput, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        output.status,
        output.stdout,
        output.stderr
    );
}

/// `ares import-postgres DUMP --data-dir DATA [extra]`, run in `root`.
fn import(root: &Path, dump: &Path, data: &Path, extra: &[&str]) -> CliOutput {
    let mut args = vec!["import-postgres", path_str(dump), "--data-dir", path_str(data)];
    args.extend_from_slice(extra);
    run_cli(root, &args, &[])
}

fn export(root: &Path, out: &Path, data: &Path) -> CliOutput {
    run_cli(root, &["export-postgres", path_str(out), "--data-dir", path_str(data)], &[])
}

/// Names in a directory (sorted); empty when it does not exist.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(read) => read.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// 1-based number of the only line of `text` that starts with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    let found: Vec<usize> =
        text.lines().enumerate().filter(|(_, line)| line.starts_with(prefix)).map(|(i, _)| i + 1).collect();
    assert_eq!(found.len(), 1, "expected one line starting with {prefix:?}, found {found:?}");
    found[0]
}

/// `text` with the line starting with `prefix` passed through `edit`.
fn edit_line(text: &str, prefix: &str, edit: impl Fn(&str) -> String) -> String {
    let line = line_of(text, prefix);
    let mut out: Vec<String> = text.lines().map(str::to_string).collect();
    let edited = edit(&out[line - 1]);
    assert_ne!(edited, out[line - 1], "the edit changed nothing");
    out[line - 1] = edited;
    out.join("\n") + "\n"
}

// ---------------------------------------------------------------- a real PostgreSQL

fn harness(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(fixture("pg_harness.sh"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tests/postgres/pg_harness.sh: {e}"))
}

/// A throw-away PostgreSQL cluster in a temp dir, destroyed on drop.
struct Postgres {
    dir: TempDir,
}

impl Postgres {
    /// `pg_harness.sh ensure` (find or install PostgreSQL) then `start`. Panics — never skips —
    /// when PostgreSQL cannot be made available.
    fn start() -> Postgres {
        let ensure = harness(&["ensure"]);
        assert!(
            ensure.status.success(),
            "PostgreSQL is required by the import/export tests and could not be made available: \
             `tests/postgres/pg_harness.sh ensure` failed ({}):\n{}",
            ensure.status,
            String::from_utf8_lossy(&ensure.stderr)
        );
        let dir = tempfile::tempdir().unwrap();
        let postgres = Postgres { dir };
        let env = postgres.run(&["start", postgres.path()]);
        assert!(env.lines().any(|l| l.starts_with("PGPORT=")), "start printed no port:\n{env}");
        postgres
    }

    fn path(&self) -> &str {
        path_str(self.dir.path())
    }

    /// Run a harness subcommand, asserting success; returns stdout.
    fn run(&self, args: &[&str]) -> String {
        let out = harness(args);
        assert!(
            out.status.success(),
            "pg_harness.sh {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// Drop and create `db`, then load `files` into it with `psql -v ON_ERROR_STOP=1 -f`.
    fn load(&self, db: &str, files: &[&Path]) {
        let mut args = vec!["load", self.path(), db];
        args.extend(files.iter().map(|f| path_str(f)));
        self.run(&args);
    }

    fn dump(&self, out: &Path, mode: &str) {
        self.run(&["dump", self.path(), path_str(out), mode, "ares"]);
    }

    /// `psql -At -c sql` against `db`; stdout without its final newline.
    fn query(&self, db: &str, sql: &str) -> String {
        let out = self.run(&["psql", self.path(), "-d", db, "-At", "-c", sql]);
        out.strip_suffix('\n').unwrap_or(&out).to_string()
    }

    /// A query returning one JSON value.
    fn json(&self, db: &str, sql: &str) -> Value {
        let text = self.query(db, sql);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{sql} did not return JSON ({e}): {text}"))
    }

    /// Every row of `table` as JSON objects ordered by `order`.
    fn rows(&self, db: &str, table: &str, order: &str) -> Vec<Value> {
        let sql = format!("select coalesce(json_agg(t order by {order}), '[]') from public.{table} t");
        self.json(db, &sql).as_array().unwrap().clone()
    }

    /// Order-independent fingerprint (md5 over every row's text) of each table.
    fn fingerprints(&self, db: &str, tables: &[&str]) -> BTreeMap<String, String> {
        let sql = tables
            .iter()
            .map(|t| {
                format!("select '{t}', md5(coalesce(string_agg(x::text, '|' order by x::text), '')) from public.{t} x")
            })
            .collect::<Vec<_>>()
            .join(" union all ");
        self.query(db, &sql)
            .lines()
            .map(|line| {
                let (table, md5) = line.split_once('|').expect("table|md5");
                (table.to_string(), md5.to_string())
            })
            .collect()
    }

    /// Rows per table, in one query.
    fn counts(&self, db: &str, tables: &[&str]) -> BTreeMap<String, u64> {
        let sql = tables
            .iter()
            .map(|t| format!("select '{t}', count(*) from public.{t}"))
            .collect::<Vec<_>>()
            .join(" union all ");
        self.query(db, &sql)
            .lines()
            .map(|line| {
                let (table, count) = line.split_once('|').expect("table|count");
                (table.to_string(), count.parse().expect("a count"))
            })
            .collect()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = harness(&["destroy", self.path()]);
    }
}

// ---------------------------------------------------------------- the real round trip

/// The models the seeded agents name, each with its own provider-side id, behind a default
/// model none of them names: a run reaching the mock with the right id proves the agent's
/// `model` resolved (an unknown name would fall back to the default).
fn provider_config(mock: &MockProvider) -> String {
    let mut config = format!(
        r#"
[[providers]]
name = "mock-openai"
type = "openai"
base_url = "{}"
api_key_env = "{KEY_ENV}"
read_timeout_secs = 5
connect_timeout_secs = 2
"#,
        mock.base_url(Wire::OpenAi)
    );
    for name in ["fallback-model", "llama3.2", "gpt-4o", "gpt-4o-mini"] {
        config.push_str(&format!(
            "\n[[models]]\nname = \"{name}\"\nprovider = \"mock-openai\"\nmodel_id = \"{}\"\n",
            model_id_of(name)
        ));
    }
    config
}

fn model_id_of(name: &str) -> String {
    format!("{}-id", name.replace('.', "-"))
}

#[tokio::test]
async fn real_pg_dumps_in_all_three_forms_import_serve_over_http_and_export_back_into_postgres() {
    let secrets = seed_secrets();
    let expected = expected_row_counts(&secrets);
    let tables: Vec<&str> = expected.keys().map(String::as_str).collect();

    let pg = Postgres::start();
    pg.load("ares", &[&fixture("reference_schema.sql"), &fixture("seed.sql")]);
    assert_eq!(pg.counts("ares", &tables), expected, "the seeded database");

    // Counters as this server keeps them: the dump's stored counters, plus what the usage
    // events add for a (tenant, month) or (tenant, day) the dump has no counter for (here: the
    // event of the deleted tenant).
    let expected_months = pg.query(
        "ares",
        "with e as (select tenant_id, extract(epoch from date_trunc('month', to_timestamp(created_at) at time zone 'UTC'))::bigint as m, \
                request_count, token_count from usage_events) \
         select string_agg(format('%s|%s|%s|%s', tenant_id, m, r, t), E'\\n' order by tenant_id, m) from ( \
           select tenant_id, usage_month as m, request_count as r, token_count as t from monthly_usage_cache \
           union all \
           select tenant_id, m, sum(request_count), sum(token_count) from e \
            where not exists (select 1 from monthly_usage_cache c where c.tenant_id = e.tenant_id and c.usage_month = e.m) \
            group by tenant_id, m) s",
    );
    let expected_days = pg.query(
        "ares",
        "with e as (select tenant_id, created_at - created_at % 86400 as d, request_count from usage_events) \
         select string_agg(format('%s|%s|%s', tenant_id, d, r), E'\\n' order by tenant_id, d) from ( \
           select tenant_id, usage_date as d, request_count as r from daily_rate_limits \
           union all \
           select tenant_id, d, sum(request_count) from e \
            where not exists (select 1 from daily_rate_limits l where l.tenant_id = e.tenant_id and l.usage_date = e.d) \
            group by tenant_id, d having sum(request_count) > 0) s",
    );
    let orphan = secrets["expected"]["orphan_tenant_id"].as_str().unwrap();
    assert!(expected_months.contains(orphan) && expected_days.contains(orphan), "{expected_months}\n{expected_days}");
    let expected_month_rows = expected_months.lines().count() as u64;
    let expected_day_rows = expected_days.lines().count() as u64;

    let work = tempfile::tempdir().unwrap();
    let mut exports: Vec<(String, PathBuf, String)> = Vec::new();
    for (mode, marker) in [
        ("copy", "COPY public.tenants (id, name, tier, created_at, updated_at) FROM stdin;"),
        ("inserts", "INSERT INTO public.tenants VALUES ("),
        ("column-inserts", "INSERT INTO public.tenants (id, name, tier, created_at, updated_at) VALUES ("),
    ] {
        let dump = work.path().join(format!("{mode}.sql"));
        pg.dump(&dump, mode);
        let text = std::fs::read_to_string(&dump).unwrap();
        assert!(text.contains(marker), "{mode} dump lacks {marker:?}");
        if mode == "copy" {
            assert!(!text.contains("INSERT INTO"), "a COPY dump has no INSERTs");
        } else {
            assert!(!text.contains(" FROM stdin;"), "an INSERT dump has no COPY blocks");
        }

        let root = work.path().join(mode);
        std::fs::create_dir_all(&root).unwrap();
        let data = root.join("data");
        let imported = import(&root, &dump, &data, &[]);
        assert_success(&imported, &format!("import of the {mode} dump"));
        assert_eq!(printed_counts(&imported.stdout), expected, "rows per table after importing the {mode} dump");
        assert!(
            imported.stdout.contains("note: 1 tenant_agents row(s) kept for export only: its tenant does not exist"),
            "{}",
            imported.stdout
        );
        assert!(!imported.stdout.contains("unknown table"), "{}", imported.stdout);
        assert_eq!(entries(&data), ["ares.redb"], "{mode}: the import leaves only the database");

        // Right after the import: a server start would seed templates and purge old sessions.
        let out = root.join("export.sql");
        let exported = export(&root, &out, &data);
        assert_success(&exported, &format!("export after importing the {mode} dump"));
        let mut want = expected.clone();
        want.remove("_sqlx_migrations");
        want.insert("monthly_usage_cache".into(), expected_month_rows);
        want.insert("daily_rate_limits".into(), expected_day_rows);
        assert_eq!(printed_counts(&exported.stdout), want, "rows exported after importing the {mode} dump");
        let text = std::fs::read_to_string(&out).unwrap();
        let (header, body) = text.split_once('\n').unwrap();
        assert!(header.starts_with("-- Written by ares export-postgres"), "{header}");
        exports.push((mode.to_string(), out, body.to_string()));
    }
    // The three dump forms became the same data.
    for (mode, _, body) in &exports[1..] {
        assert!(*body == exports[0].2, "the export after importing the {mode} dump differs from the copy one");
    }

    // The export loads into a fresh database with the reference schema ...
    pg.load("roundtrip", &[&fixture("reference_schema.sql"), &exports[0].1]);
    // ... with the same rows as the seeded database, except what is derived or not exported.
    let special = ["_sqlx_migrations", "monthly_usage_cache", "daily_rate_limits", "user_agents"];
    let exact: Vec<&str> = tables.iter().copied().filter(|t| !special.contains(t)).collect();
    assert_eq!(
        pg.fingerprints("roundtrip", &exact),
        pg.fingerprints("ares", &exact),
        "tables that must round-trip exactly"
    );
    let mut want = expected.clone();
    want.insert("_sqlx_migrations".into(), 0);
    want.insert("monthly_usage_cache".into(), expected_month_rows);
    want.insert("daily_rate_limits".into(), expected_day_rows);
    assert_eq!(pg.counts("roundtrip", &tables), want, "rows per table after the round trip");
    // Secrets per id, explicitly: as seeded, and as seed_secrets.json has them.
    let secrets_sql = "select json_build_object( \
        'api_keys.key_hash', (select json_object_agg(id, key_hash) from public.api_keys), \
        'api_keys.key_prefix', (select json_object_agg(id, key_prefix) from public.api_keys), \
        'users.password_hash', (select json_object_agg(id, password_hash) from public.users), \
        'sessions.token_hash', (select json_object_agg(id, token_hash) from public.sessions))";
    let round_tripped = pg.json("roundtrip", secrets_sql);
    assert_eq!(round_tripped, pg.json("ares", secrets_sql), "key hashes per id");
    for (list, column) in
        [("api_keys", "key_hash"), ("api_keys", "key_prefix"), ("users", "password_hash"), ("sessions", "token_hash")]
    {
        let by_id = &round_tripped[format!("{list}.{column}")];
        let items = secrets[list].as_array().unwrap();
        assert_eq!(by_id.as_object().unwrap().len(), items.len(), "{list}.{column}");
        for item in items {
            assert_eq!(by_id[item["id"].as_str().unwrap()], item[column], "{list}.{column} of {}", item["id"]);
        }
    }
    // user_agents: every column verbatim; `extra` (JSON kept in TEXT) as the same JSON value.
    let user_agents = "select md5(string_agg(x::text, '|' order by x::text)) from (select id, user_id, name, display_name, \
        description, model, system_prompt, tools, max_tool_iterations, parallel_tools, extra::jsonb, is_public, \
        usage_count, rating_sum, rating_count, source, created_at, updated_at from public.user_agents) x";
    assert_eq!(pg.query("roundtrip", user_agents), pg.query("ares", user_agents), "user_agents");
    // The counters: the stored ones, plus the orphan event's.
    let months = "select string_agg(format('%s|%s|%s|%s', tenant_id, usage_month, request_count, token_count), E'\\n' \
        order by tenant_id, usage_month) from public.monthly_usage_cache";
    assert_eq!(pg.query("roundtrip", months), expected_months, "monthly_usage_cache");
    let days = "select string_agg(format('%s|%s|%s', tenant_id, usage_date, request_count), E'\\n' \
        order by tenant_id, usage_date) from public.daily_rate_limits";
    assert_eq!(pg.query("roundtrip", days), expected_days, "daily_rate_limits");

    // Serve the COPY import and check it over HTTP.
    let agents = pg.rows("ares", "tenant_agents", "t.id");
    let runs = pg.rows("ares", "agent_runs", "t.id");
    serve_and_check(&work.path().join("copy"), &secrets, &agents, &runs).await;
}

/// GET with a bearer token.
async fn get(server: &BinaryServer, path: &str, token: &str) -> reqwest::Response {
    server.client().get(server.url(path)).bearer_auth(token).send().await.unwrap()
}

async fn admin_get(server: &BinaryServer, path: &str) -> Value {
    let request = server.client().get(server.url(path)).header("x-admin-secret", server.admin_secret());
    expect_json(request.send().await.unwrap(), 200).await
}

fn rfc3339(value: &Value) -> Value {
    Value::from(ares::clock::rfc3339(value.as_i64().unwrap_or_else(|| panic!("not a timestamp: {value}"))))
}

/// The imported data through the API of the real binary, with the old server's JWT secret.
async fn serve_and_check(root: &Path, secrets: &Value, agents: &[Value], runs: &[Value]) {
    let mock = MockProvider::start();
    let server = BinaryServer::builder(root)
        .config(&provider_config(&mock))
        .env(KEY_ENV, PROVIDER_KEY)
        .env("JWT_SECRET", secrets["jwt_secret"].as_str().unwrap())
        .start();
    let per_tenant = &secrets["expected"]["per_tenant"];

    // Tenants, with their effective tiers. Usage defaults to the current UTC month (nothing
    // imported there); `?month=YYYY-MM` shows the dump's January/February 2026 counters.
    let listed = admin_get(&server, "/api/admin/tenants").await;
    let listed = listed["tenants"].as_array().unwrap();
    let tenants = secrets["tenants"].as_array().unwrap();
    assert_eq!(listed.len(), tenants.len(), "{listed:?}");
    for tenant in tenants {
        let id = tenant["id"].as_str().unwrap();
        let view = listed.iter().find(|t| t["id"] == id).unwrap_or_else(|| panic!("tenant {id} not listed"));
        assert_eq!(view["name"], tenant["name"]);
        assert_eq!(view["tier"], tenant["effective_tier"]);
        assert_eq!(view["created_at"], rfc3339(&tenant["created_at"]));
        assert_eq!(view["updated_at"], rfc3339(&tenant["updated_at"]));
        let usage = admin_get(&server, &format!("/api/admin/tenants/{id}/usage")).await;
        assert_eq!((usage["monthly_requests"].as_u64(), usage["total_runs"].as_u64()), (Some(0), Some(0)), "{usage}");

        let expected = &per_tenant[id];
        if let Some(months) = expected["monthly_usage_cache"].as_object() {
            for (month, counters) in months {
                let usage = admin_get(&server, &format!("/api/admin/tenants/{id}/usage?month={month}")).await;
                assert_eq!(usage["monthly_requests"], counters["request_count"], "{id} {month}: {usage}");
                assert_eq!(usage["monthly_tokens"], counters["token_count"], "{id} {month}: {usage}");
                assert_eq!(usage["period_start"], format!("{month}-01T00:00:00Z"), "{usage}");
            }
        }
        let detail = admin_get(&server, &format!("/api/admin/tenants/{id}")).await;
        let runs_expected = &expected["agent_runs"];
        assert_eq!(detail["total_runs"], runs_expected["count"], "{id}: {detail}");
        let tokens = runs_expected["input_tokens"].as_u64().unwrap() + runs_expected["output_tokens"].as_u64().unwrap();
        assert_eq!(detail["total_tokens"].as_u64(), Some(tokens), "{id}: {detail}");
        assert_eq!(detail["api_key_count"], expected["api_keys"]["authenticating"], "{id}: {detail}");
    }

    // Every API key that should authenticate does, as `ares_<hex>` and as the bare hex, as its
    // own tenant; the revoked and the expired ones get 401.
    let mut key_of: HashMap<String, String> = HashMap::new();
    for key in secrets["api_keys"].as_array().unwrap() {
        let tenant = key["tenant_id"].as_str().unwrap();
        let mut names: Vec<String> = per_tenant[tenant]["tenant_agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        names.sort();
        for token in [key["bearer"].as_str().unwrap(), key["raw_key"].as_str().unwrap()] {
            let response = get(&server, "/v1/agents", token).await;
            if key["should_authenticate"] == true {
                let body = expect_json(response, 200).await;
                let mut listed: Vec<String> = body["agents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["name"].as_str().unwrap().to_string())
                    .collect();
                listed.sort();
                assert_eq!(listed, names, "agents seen with key {} ({})", key["id"], key["reason"]);
                expect_json(get(&server, "/v1/usage", token).await, 200).await;
            } else {
                expect_error(response, 401, "AUTHENTICATION_FAILED").await;
                expect_error(get(&server, "/v1/usage", token).await, 401, "AUTHENTICATION_FAILED").await;
            }
        }
        if key["should_authenticate"] == true {
            key_of.entry(tenant.to_string()).or_insert_with(|| key["bearer"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(key_of.len(), tenants.len(), "every tenant has a working key");

    // Tenant agents: ids, names, descriptions, timestamps and JSONB configs as dumped, through
    // the client API and the admin API; the agent of the deleted tenant is nowhere.
    for tenant in tenants {
        let id = tenant["id"].as_str().unwrap();
        let mine: Vec<&Value> = agents.iter().filter(|a| a["tenant_id"] == id).collect();
        let v1 = expect_json(get(&server, "/v1/agents", &key_of[id]).await, 200).await;
        let admin = admin_get(&server, &format!("/api/admin/tenants/{id}/agents")).await;
        for listed in [&v1["agents"], &admin["agents"]] {
            assert_eq!(listed.as_array().unwrap().len(), mine.len(), "{id}: {listed}");
        }
        for agent in mine {
            let name = agent["agent_name"].as_str().unwrap();
            let status = if agent["enabled"] == true { "active" } else { "disabled" };
            let v1 = v1["agents"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap();
            let admin = admin["agents"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap();
            for view in [v1, admin] {
                assert_eq!(view["id"], agent["id"], "{view}");
                assert_eq!(view["display_name"], agent["display_name"], "{view}");
                assert_eq!(view["description"], agent["description"], "{view}");
                assert_eq!(view["config"], agent["config"], "{view}");
                assert_eq!(view["status"], status, "{view}");
                assert_eq!(view["created_at"], rfc3339(&agent["created_at"]), "{view}");
            }
            assert_eq!(admin["enabled"], agent["enabled"]);
            assert_eq!(admin["updated_at"], rfc3339(&agent["updated_at"]));
            assert_eq!(admin["model"], agent["config"]["model"]);
        }
    }
    let everyone = admin_get(&server, "/api/admin/agents").await;
    assert!(everyone["agents"].as_array().unwrap().iter().all(|a| a["name"] != "ghost"), "{everyone}");

    // Runs as dumped, per agent, and the per-tenant totals of seed_secrets.json.
    for tenant in tenants {
        let id = tenant["id"].as_str().unwrap();
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for run in runs.iter().filter(|r| r["tenant_id"] == id) {
            names.insert(run["agent_name"].as_str().unwrap());
        }
        let (mut count, mut input, mut output, mut duration) = (0, 0, 0, 0);
        let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
        let mut by_month: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for name in names {
            let dumped: Vec<&Value> = runs.iter().filter(|r| r["tenant_id"] == id && r["agent_name"] == name).collect();
            let page =
                expect_json(get(&server, &format!("/v1/agents/{name}/runs?per_page=100"), &key_of[id]).await, 200)
                    .await;
            let served = page["runs"].as_array().unwrap();
            assert_eq!(page["total"].as_u64(), Some(dumped.len() as u64), "{id}/{name}: {page}");
            assert_eq!(served.len(), dumped.len());
            for run in &dumped {
                let view =
                    served.iter().find(|v| v["id"] == run["id"]).unwrap_or_else(|| panic!("run {} missing", run["id"]));
                assert_eq!(view["status"], run["status"]);
                assert_eq!(view["input"]["tokens"], run["input_tokens"]);
                assert_eq!(view["output"]["tokens"], run["output_tokens"]);
                assert_eq!(view["duration_ms"], run["duration_ms"]);
                assert_eq!(view["error"], run["error"]);
                assert_eq!(view["started_at"], rfc3339(&run["created_at"]));
            }
            for view in served {
                count += 1;
                input += view["input"]["tokens"].as_u64().unwrap();
                output += view["output"]["tokens"].as_u64().unwrap();
                duration += view["duration_ms"].as_u64().unwrap();
                *by_status.entry(view["status"].as_str().unwrap().to_string()).or_default() += 1;
                let month = view["started_at"].as_str().unwrap()[..7].to_string();
                let entry = by_month.entry(month).or_default();
                entry.0 += 1;
                entry.1 += view["tokens_used"].as_u64().unwrap();
            }
            // The admin statistics agree.
            let stats = admin_get(&server, &format!("/api/admin/tenants/{id}/agents/{name}/stats")).await;
            let completed = dumped.iter().filter(|r| r["status"] == "completed").count() as u64;
            let failed = dumped.iter().filter(|r| r["status"] == "failed").count() as u64;
            assert_eq!(stats["total_runs"].as_u64(), Some(dumped.len() as u64), "{stats}");
            assert_eq!(
                (stats["successful_runs"].as_u64(), stats["failed_runs"].as_u64()),
                (Some(completed), Some(failed))
            );
            let sum = |column: &str| dumped.iter().map(|r| r[column].as_u64().unwrap()).sum::<u64>();
            assert_eq!(stats["total_input_tokens"].as_u64(), Some(sum("input_tokens")));
            assert_eq!(stats["total_output_tokens"].as_u64(), Some(sum("output_tokens")));
            let last = dumped.iter().map(|r| r["created_at"].as_i64().unwrap()).max().unwrap();
            assert_eq!(stats["last_run"], Value::from(ares::clock::rfc3339(last)));
        }
        let want = &per_tenant[id]["agent_runs"];
        assert_eq!(count, want["count"].as_u64().unwrap(), "{id} runs");
        assert_eq!(input, want["input_tokens"].as_u64().unwrap(), "{id} input tokens");
        assert_eq!(output, want["output_tokens"].as_u64().unwrap(), "{id} output tokens");
        assert_eq!(duration, want["duration_ms"].as_u64().unwrap(), "{id} duration");
        let want_status: BTreeMap<String, u64> = serde_json::from_value(want["by_status"].clone()).unwrap();
        assert_eq!(by_status, want_status, "{id} runs by status");
        let want_month: BTreeMap<String, (u64, u64)> = want["by_month"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(m, v)| (m.clone(), (v["runs"].as_u64().unwrap(), v["tokens"].as_u64().unwrap())))
            .collect();
        assert_eq!(by_month, want_month, "{id} runs by month");
    }

    // Imported agents run: each on the model its config names, with its system prompt.
    for agent in agents.iter().filter(|a| a["tenant_id"] != secrets["expected"]["orphan_tenant_id"]) {
        let (tenant, name) = (agent["tenant_id"].as_str().unwrap(), agent["agent_name"].as_str().unwrap());
        let before = mock.chat_requests().len();
        let response = server
            .client()
            .post(server.url(&format!("/v1/agents/{name}/run")))
            .bearer_auth(&key_of[tenant])
            .json(&json!({ "input": { "message": "Hello there" } }))
            .send()
            .await
            .unwrap();
        if agent["enabled"] != true {
            expect_error(response, 404, "NOT_FOUND").await;
            assert_eq!(mock.chat_requests().len(), before, "a disabled agent calls no model");
            continue;
        }
        let run = expect_json(response, 200).await;
        assert_eq!(run["status"], "completed", "{run}");
        assert_eq!(run["agent_id"], agent["id"]);
        assert_eq!(run["output"], json!({ "response": "Hello from the mock provider." }));
        assert_eq!(run["tokens_used"], 18, "the mock's default usage: {run}");
        let calls = mock.chat_requests().split_off(before);
        assert_eq!(calls.len(), 1, "{name}: one model call");
        let model = agent["config"]["model"].as_str().unwrap();
        assert_eq!(calls[0].body["model"], model_id_of(model), "{tenant}/{name} runs on {model}");
        let system: Vec<String> =
            calls[0].transcript().into_iter().filter(|(role, _)| role == "system").map(|(_, text)| text).collect();
        let prompt = agent["config"]["system_prompt"].as_str().unwrap_or("");
        let want: Vec<String> = if prompt.is_empty() { Vec::new() } else { vec![prompt.to_string()] };
        assert_eq!(system, want, "{tenant}/{name} system prompt");
        // The new run joins the imported ones.
        let page = expect_json(get(&server, &format!("/v1/agents/{name}/runs"), &key_of[tenant]).await, 200).await;
        let dumped = runs.iter().filter(|r| r["tenant_id"] == tenant && r["agent_name"] == name).count() as u64;
        assert_eq!(page["total"].as_u64(), Some(dumped + 1), "{page}");
    }

    // Every user logs in with their old password (hashes keep their own Argon2 parameters).
    let mut tokens: HashMap<String, String> = HashMap::new();
    for user in secrets["users"].as_array().unwrap() {
        let login = |password: &str| {
            server
                .client()
                .post(server.url("/api/auth/login"))
                .json(&json!({ "email": user["email"], "password": password }))
                .send()
        };
        let body = expect_json(login(user["password"].as_str().unwrap()).await.unwrap(), 200).await;
        assert_eq!(body["user_id"], user["id"], "{body}");
        tokens.insert(user["id"].as_str().unwrap().to_string(), body["access_token"].as_str().unwrap().to_string());
        expect_error(login("not the password").await.unwrap(), 401, "AUTHENTICATION_FAILED").await;
    }

    // Conversations read back, messages in order, only by their owner.
    for (user, counts) in secrets["expected"]["per_user"].as_object().unwrap() {
        let list = expect_json(get(&server, "/api/conversations", &tokens[user]).await, 200).await;
        assert_eq!(list.as_array().unwrap().len() as u64, counts["conversations"].as_u64().unwrap(), "{user}: {list}");
    }
    for conversation in secrets["conversations"].as_array().unwrap() {
        let id = conversation["id"].as_str().unwrap();
        let owner = conversation["user_id"].as_str().unwrap();
        let path = format!("/api/conversations/{id}");
        let body = expect_json(get(&server, &path, &tokens[owner]).await, 200).await;
        assert_eq!(body["id"], id);
        assert_eq!(body["title"], conversation["title"], "{id}");
        assert_eq!(body["created_at"], rfc3339(&conversation["created_at"]));
        assert_eq!(body["updated_at"], rfc3339(&conversation["updated_at"]));
        let want: Vec<Value> = conversation["messages_in_order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| json!({ "id": m["id"], "role": m["role"], "content": m["content"], "created_at": rfc3339(&m["timestamp"]) }))
            .collect();
        assert_eq!(body["messages"], Value::Array(want.clone()), "{id}: messages in order");
        assert_eq!(body["message_count"].as_u64(), Some(want.len() as u64));
        let stranger = tokens.iter().find(|(user, _)| user.as_str() != owner).map(|(_, token)| token).unwrap();
        expect_error(get(&server, &path, stranger).await, 404, "NOT_FOUND").await;
    }
}

// ---------------------------------------------------------------- refusals and failures

#[test]
fn import_refuses_a_data_dir_that_holds_data_unless_forced_and_keeps_the_replaced_database() {
    let expected = expected_row_counts(&seed_secrets());
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");

    // A data dir holding only generated secrets counts as empty.
    std::fs::create_dir_all(data.join("secrets")).unwrap();
    std::fs::write(data.join("secrets/admin_secret"), "kept").unwrap();
    let first = import(root.path(), &fixture("sample_dump_copy.sql"), &data, &[]);
    assert_success(&first, "import into a data dir with only secrets");
    assert_eq!(printed_counts(&first.stdout), expected);
    let original = std::fs::read(data.join("ares.redb")).unwrap();
    let before = entries(&data);

    // Again, without --force: exit 2, a clear message, nothing touched.
    let refused = import(root.path(), &fixture("sample_dump_inserts.sql"), &data, &[]);
    assert_eq!(refused.code(), Some(2), "stdout:\n{}\nstderr:\n{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("already holds data") && refused.stderr.contains("--force"), "{}", refused.stderr);
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    assert_eq!(entries(&data), before);
    assert!(std::fs::read(data.join("ares.redb")).unwrap() == original, "the database was modified");

    // With --force: imported, and the old database kept beside the new one.
    let forced = import(root.path(), &fixture("sample_dump_column_inserts.sql"), &data, &["--force"]);
    assert_success(&forced, "import --force");
    assert_eq!(printed_counts(&forced.stdout), expected);
    let kept = forced
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("the replaced database was kept as "))
        .unwrap_or_else(|| panic!("no kept file reported:\n{}", forced.stdout));
    let kept = Path::new(kept.trim());
    assert_eq!(kept.parent(), Some(data.as_path()), "{}", kept.display());
    assert!(kept.file_name().unwrap().to_str().unwrap().starts_with("ares.redb.before-import-"), "{}", kept.display());
    // The kept file is the replaced database (opened once to check no server holds it, so
    // compared by content): both export the same rows.
    assert_eq!(export_body(root.path(), &original), export_body(root.path(), &std::fs::read(kept).unwrap()));
    let mut after = entries(&data);
    after.retain(|name| !name.starts_with("ares.redb.before-import-"));
    assert_eq!(after, before, "only the kept database was added");
    assert_eq!(std::fs::read_to_string(data.join("secrets/admin_secret")).unwrap(), "kept");
}

#[test]
fn import_reports_unknown_tables_and_imports_the_rest() {
    let expected = expected_row_counts(&seed_secrets());
    let dump = std::fs::read_to_string(fixture("sample_dump_copy.sql")).unwrap();
    let extra = "CREATE TABLE public.legacy_widgets (\n    id integer NOT NULL,\n    label text\n);\n\n\
                 COPY public.legacy_widgets (id, label) FROM stdin;\n1\tfirst\n2\t\\N\n\\.\n\n\
                 CREATE TABLE public.legacy_gadgets (id integer, note text);\n\
                 INSERT INTO public.legacy_gadgets VALUES (7, 'inserted');\n\n";
    let at = dump.find("COPY public.tenants ").unwrap();
    let crafted = format!("{}{extra}{}", &dump[..at], &dump[at..]);
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("with-unknown.sql");
    std::fs::write(&path, crafted).unwrap();

    let data = root.path().join("data");
    let output = import(root.path(), &path, &data, &[]);
    assert_success(&output, "import of a dump with unknown tables");
    assert_eq!(printed_counts(&output.stdout), expected, "the known tables are all imported");
    for note in [
        "note: unknown table legacy_widgets (2 rows) was not imported",
        "note: unknown table legacy_gadgets (1 rows) was not imported",
    ] {
        assert!(output.stdout.contains(note), "missing {note:?} in:\n{}", output.stdout);
    }
}

/// What `ares export-postgres` writes for a database file with these bytes (minus its
/// time-stamped first line).
fn export_body(root: &Path, database: &[u8]) -> String {
    let dir = tempfile::tempdir_in(root).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("ares.redb"), database).unwrap();
    let out = dir.path().join("out.sql");
    assert_success(&export(dir.path(), &out, &data), "export");
    let text = std::fs::read_to_string(&out).unwrap();
    text.split_once('\n').unwrap().1.to_string()
}

/// Import `dump` (text) into `data`; it must fail naming `line` and leave `data` as it was.
fn assert_import_fails_cleanly(root: &Path, dump: &str, data: &Path, extra: &[&str], line: usize, needles: &[&str]) {
    let before: Vec<(String, Vec<u8>)> = entries(data)
        .into_iter()
        .map(|name| {
            let path = data.join(&name);
            let bytes = if path.is_file() { std::fs::read(&path).unwrap() } else { Vec::new() };
            (name, bytes)
        })
        .collect();
    let existed = data.exists();
    let path = root.join("malformed.sql");
    std::fs::write(&path, dump).unwrap();

    let output = import(root, &path, data, extra);
    assert_eq!(output.code(), Some(1), "stdout:\n{}\nstderr:\n{}", output.stdout, output.stderr);
    assert!(output.stderr.contains(&format!("line {line}:")), "line {line} not named:\n{}", output.stderr);
    for needle in needles {
        assert!(output.stderr.contains(needle), "{needle:?} not in:\n{}", output.stderr);
    }
    assert!(printed_counts_absent(&output.stdout), "a failed import prints no table:\n{}", output.stdout);
    assert_eq!(data.exists(), existed, "the data dir was created or removed");
    let after: Vec<(String, Vec<u8>)> = entries(data)
        .into_iter()
        .map(|name| {
            let path = data.join(&name);
            let bytes = if path.is_file() { std::fs::read(&path).unwrap() } else { Vec::new() };
            (name, bytes)
        })
        .collect();
    assert!(after == before, "the data dir changed: {:?} -> {:?}", names(&before), names(&after));
}

fn names(files: &[(String, Vec<u8>)]) -> Vec<&str> {
    files.iter().map(|(name, _)| name.as_str()).collect()
}

fn printed_counts_absent(stdout: &str) -> bool {
    !stdout.lines().any(|line| line.starts_with("TABLE") && line.ends_with("ROWS"))
}

#[test]
fn a_malformed_row_stops_the_import_at_its_line_and_leaves_the_data_dir_untouched() {
    let root = tempfile::tempdir().unwrap();
    let copy = std::fs::read_to_string(fixture("sample_dump_copy.sql")).unwrap();
    let inserts = std::fs::read_to_string(fixture("sample_dump_inserts.sql")).unwrap();

    // An existing database, replaced with --force only if the import succeeds.
    let data = root.path().join("data");
    assert_success(&import(root.path(), &fixture("sample_dump_copy.sql"), &data, &[]), "first import");

    // A COPY row whose value does not convert: a timestamp that is not a number.
    let tenant = "90061863-39ae-49a1-9686-0661d4cba6eb\tacme-corp\tenterprise\t";
    let bad = edit_line(&copy, tenant, |line| line.replace("\t1767484800\t", "\tyesterday\t"));
    let line = line_of(&bad, tenant);
    assert_import_fails_cleanly(root.path(), &bad, &data, &["--force"], line, &["tenants", "created_at", "yesterday"]);

    // A COPY row with a column missing: the dump itself is malformed.
    let bad = edit_line(&copy, tenant, |line| line.replacen("\tacme-corp", "", 1));
    let line = line_of(&bad, "90061863-39ae-49a1-9686-0661d4cba6eb\tenterprise\t");
    assert_import_fails_cleanly(root.path(), &bad, &data, &["--force"], line, &[]);

    // An INSERT whose JSONB config is not JSON, into an empty data dir.
    let agent = "INSERT INTO public.tenant_agents VALUES ('44174414-8754-41ca-b8c7-49db696d704f'";
    let bad = edit_line(&inserts, agent, |line| line.replace("{\"model\": \"gpt-4o\"", "{\"model\": gpt-4o\""));
    let empty = root.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_import_fails_cleanly(root.path(), &bad, &empty, &[], line_of(&bad, agent), &["tenant_agents", "config"]);

    // The same into a data dir that does not exist yet: it still does not afterwards.
    let absent = root.path().join("absent");
    assert_import_fails_cleanly(root.path(), &bad, &absent, &[], line_of(&bad, agent), &["tenant_agents", "config"]);
}
