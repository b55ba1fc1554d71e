//! The `ares` binary itself: exit codes, configuration errors, `init`, `migrate`, signals and
//! first-start secret generation. Every child gets an explicit environment.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{BinaryServer, JWT_SECRET, run_cli};

/// Enough for `serve` to start without generating secrets.
const SECRETS: &[(&str, &str)] = &[("ADMIN_API_KEY", "cli-admin-secret"), ("JWT_SECRET", JWT_SECRET)];

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

#[test]
fn unknown_flag_exits_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(dir.path(), &["--bogus-flag"], &[]);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("--bogus-flag"), "{}", out.stderr);
}

#[test]
fn config_errors_name_the_key_and_line_and_exit_2() {
    fn check(config: &str, expected: &[&str]) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, config).unwrap();
        let data = dir.path().join("data");
        let args = ["--config", path_arg(&file), "--data-dir", path_arg(&data), "--port", "0"];
        let out = run_cli(dir.path(), &args, SECRETS);
        assert_eq!(out.code(), Some(2), "config {config:?}: {out:?}");
        for needle in expected {
            assert!(out.stderr.contains(needle), "config {config:?}: stderr lacks {needle:?}:\n{}", out.stderr);
        }
        assert!(!data.join("ares.redb").exists(), "a bad config must stop start-up before the store is created");
    }
    check("[server]\nport = \"abc\"\n", &["server.port", "line 2"]);
    check("# a comment\n\n[server]\nhost = \"127.0.0.1\"\nport = \"abc\"\n", &["server.port", "line 5"]);
    check("[server]\nrate_limit_burst = -1\n", &["server.rate_limit_burst", "line 2"]);
    check("[server\n", &["line 1"]);
    check("[server]\nrate_limit_per_second = 5\nrate_limit_burst = 0\n", &["server.rate_limit_burst"]);
    check("[chat]\ndefault_agent = \"nobody\"\n", &["chat.default_agent", "nobody"]);

    // A missing explicitly named file is an error too, not "use the defaults".
    let dir = tempfile::tempdir().unwrap();
    let out = run_cli(dir.path(), &["--config", "missing.toml", "--port", "0"], SECRETS);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("missing.toml"), "{}", out.stderr);
}

#[test]
fn unknown_config_keys_only_warn() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::builder(dir.path()).config("[server]\nbogus_key = 1\n[bogus_section]\nx = 2\n").start();
    let stderr = server.wait_for_stderr("server.bogus_key");
    assert!(stderr.contains("unknown key"), "{stderr}");
    server.wait_for_stderr("bogus_section");
}

#[test]
fn short_jwt_secret_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["--data-dir", path_arg(&data), "--port", "0"];
    let out = run_cli(dir.path(), &args, &[("JWT_SECRET", "short"), ("ADMIN_API_KEY", "x")]);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("JWT_SECRET must be at least 32 characters"), "{}", out.stderr);
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_a_commented_config_and_secrets_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ares.toml");
    let data = dir.path().join("data");
    let args = ["init", "--config", path_arg(&config), "--data-dir", path_arg(&data)];

    let out = run_cli(dir.path(), &args, &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let written = std::fs::read_to_string(&config).unwrap();
    assert_eq!(written, ares::config::DEFAULT_CONFIG_TOML);
    assert!(written.lines().filter(|l| l.starts_with('#')).count() > 5, "the config explains itself");
    let admin = std::fs::read_to_string(data.join("secrets/admin_secret")).unwrap();
    let jwt = std::fs::read_to_string(data.join("secrets/jwt_secret")).unwrap();
    assert!(jwt.trim().len() >= 32);
    #[cfg(unix)]
    for file in ["admin_secret", "jwt_secret"] {
        assert_eq!(mode(&data.join("secrets").join(file)), 0o600, "{file}");
    }
    let shown: Vec<&str> = out.stdout.lines().filter(|l| l.contains(admin.trim())).collect();
    assert_eq!(shown.len(), 1, "the admin secret is printed exactly once:\n{}", out.stdout);
    assert!(shown[0].starts_with("Generated an admin secret"), "{}", shown[0]);
    assert!(data.join("ares.redb").exists(), "init creates the database");

    // A second init keeps an edited config and the existing secrets, and prints no secret.
    let edited = format!("{written}\n# edited by the operator\n");
    std::fs::write(&config, &edited).unwrap();
    let out = run_cli(dir.path(), &args, &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
    assert_eq!(std::fs::read_to_string(data.join("secrets/admin_secret")).unwrap(), admin);
    assert_eq!(std::fs::read_to_string(data.join("secrets/jwt_secret")).unwrap(), jwt);
    assert!(out.stdout.contains("already exists"), "{}", out.stdout);
    assert!(!out.stdout.contains(admin.trim()), "the secret is not shown again:\n{}", out.stdout);
    assert!(!out.stdout.contains("Generated"), "{}", out.stdout);
}

/// The `APPLIED_AT` column of `migrate status` for `version`.
fn applied_at(stdout: &str, version: u32) -> String {
    let row = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&version.to_string()))
        .unwrap_or_else(|| panic!("no row for version {version}:\n{stdout}"));
    row.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn migrate_status_and_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let status = ["migrate", "status", "--data-dir", path_arg(&data)];

    // No ./ares.toml in the working directory: built-in defaults.
    let out = run_cli(dir.path(), &status, &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(applied_at(&out.stdout, 1), "pending");
    assert!(!data.join("ares.redb").exists(), "status does not create the database");

    let out = run_cli(dir.path(), &["migrate", "up", "--data-dir", path_arg(&data)], &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("applied migrations: 1"), "{}", out.stdout);

    let out = run_cli(dir.path(), &status, &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let applied = applied_at(&out.stdout, 1);
    assert!(applied.ends_with('Z'), "{applied}");
    time::OffsetDateTime::parse(&applied, &time::format_description::well_known::Rfc3339).unwrap();

    let out = run_cli(dir.path(), &["migrate", "up", "--data-dir", path_arg(&data)], &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("up to date"), "{}", out.stdout);
    assert_eq!(applied_at(&out.stdout, 1), applied, "a second up changes nothing");
}

/// While a server holds the file, `migrate status` asks it (read-only, with the admin secret
/// found as the server finds it) and `migrate up` fails at once rather than waiting.
#[test]
fn migrate_status_asks_the_running_server_and_up_fails_fast() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::builder(dir.path()).start();
    let status = ["migrate", "status", "--data-dir", path_arg(server.data_dir())];
    let out = run_cli(dir.path(), &status, &[("ADMIN_API_KEY", server.admin_secret())]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stderr.contains("asking it"), "{}", out.stderr);
    let rows: Vec<&str> = out.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), ares::store::migrations::MIGRATIONS.len(), "{}", out.stdout);
    assert!(rows.iter().all(|row| !row.contains("pending")), "{}", out.stdout);
    // Without the secret the server has, it says what to set.
    let out = run_cli(dir.path(), &status, &[]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("ADMIN_API_KEY"), "{}", out.stderr);
    // run_cli's guard fails the test if the command blocks on the lock instead of failing.
    let out = run_cli(dir.path(), &["migrate", "up", "--data-dir", path_arg(server.data_dir())], &[]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("in use"), "{}", out.stderr);
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_removes_the_server_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = BinaryServer::builder(dir.path()).start();
    let server_file = server.data_dir().join("server.json");
    let info: Value = serde_json::from_str(&std::fs::read_to_string(&server_file).unwrap()).unwrap();
    assert_eq!(info["addr"], server.addr().to_string());
    assert!(info["pid"].as_u64().is_some_and(|pid| pid > 0));
    let response = server.client().get(server.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(!server_file.exists(), "server.json is removed on a clean stop");
    server.wait_for_stderr("stopped cleanly");
    assert!(server.client().get(server.url("/health")).send().await.is_err(), "nothing listens any more");
}

#[tokio::test]
async fn first_start_without_config_or_env_generates_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = BinaryServer::builder(dir.path()).no_config_file().generated_secrets().start();
    let secret = server.admin_secret().to_string();
    let stdout = server.stdout();
    let shown: Vec<&String> = stdout.iter().filter(|l| l.contains("Generated an admin secret")).collect();
    assert_eq!(shown.len(), 1, "{stdout:?}");
    let stored = std::fs::read_to_string(server.data_dir().join("secrets/admin_secret")).unwrap();
    assert_eq!(stored.trim(), secret);
    assert!(server.data_dir().join("secrets/jwt_secret").exists());

    let tenants = |server: &BinaryServer, secret: &str| {
        server.client().request(Method::GET, server.url("/api/admin/tenants")).header("x-admin-secret", secret).send()
    };
    let response = tenants(&server, &secret).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!({ "tenants": [] }));
    assert_eq!(server.terminate().code(), Some(0));

    // Second start: the stored secret is used and not printed again.
    let mut server = BinaryServer::builder(dir.path()).no_config_file().generated_secrets().start();
    assert!(server.stdout().iter().all(|l| !l.contains("Generated")), "{:?}", server.stdout());
    assert_eq!(tenants(&server, &secret).await.unwrap().status(), 200);
    assert_eq!(server.terminate().code(), Some(0));

    // A secret set in the environment wins over the stored one.
    let server = BinaryServer::builder(dir.path())
        .no_config_file()
        .generated_secrets()
        .env("ADMIN_API_KEY", "rotated-admin-secret")
        .start();
    assert_eq!(tenants(&server, "rotated-admin-secret").await.unwrap().status(), 200);
    assert_eq!(tenants(&server, &secret).await.unwrap().status(), 401);
    assert_eq!(std::fs::read_to_string(server.data_dir().join("secrets/admin_secret")).unwrap(), stored);
}

/// `ares doctor --json`, parsed, with its exit code.
fn doctor(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, Value, String) {
    let mut all = vec!["doctor", "--offline", "--json"];
    all.extend_from_slice(args);
    let out = run_cli(dir, &all, env);
    let report: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out:?}"));
    (out.code(), report, out.stderr)
}

/// The check named `name` whose detail contains `needle`.
fn check<'a>(report: &'a Value, name: &str, needle: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name && c["detail"].as_str().unwrap_or_default().contains(needle))
        .unwrap_or_else(|| panic!("no {name} check mentioning {needle:?}: {report}"))
}

/// On what `ares init` leaves, every check passes (exit 0); a secret readable by others and a
/// config error each fail with the fix named, and the exit code is 1. Nothing is changed: the
/// loose mode is still there afterwards.
#[test]
fn doctor_passes_a_fresh_install_and_names_each_failure_with_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let init = run_cli(dir.path(), &["init", "--data-dir", path_arg(&data)], &[]);
    assert_eq!(init.code(), Some(0), "{init:?}");
    // The doctor checks the port the server would take: `PORT` here, as `--port` is `serve`'s.
    let base = ["--data-dir", path_arg(&data)];

    let (code, report, stderr) = doctor(dir.path(), &base, &[("PORT", "0")]);
    assert_eq!(code, Some(0), "{report} {stderr}");
    assert_eq!(report["ok"], true);
    for name in ["config", "data dir", "secrets", "disk", "migrations", "clock", "port"] {
        let found = report["checks"].as_array().unwrap().iter().find(|c| c["name"] == name);
        assert_eq!(found.map(|c| &c["status"]), Some(&json!("ok")), "{name}: {report}");
    }
    assert_eq!(check(&report, "upstreams", "--offline")["status"], "skipped", "--offline contacts nothing");

    use std::os::unix::fs::PermissionsExt as _;
    let secret = data.join("secrets/admin_secret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, report, stderr) = doctor(dir.path(), &base, &[("PORT", "0")]);
    assert_eq!(code, Some(1), "{report}");
    assert!(stderr.contains("1 of"), "{stderr}");
    let loose = check(&report, "secrets", "admin secret");
    assert_eq!(loose["status"], "fail", "{report}");
    assert!(loose["fix"].as_str().unwrap().contains("chmod 600"), "{loose}");
    assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o644, "doctor changes nothing");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nport = \"x\"\n").unwrap();
    let (code, report, _) = doctor(dir.path(), &["--config", path_arg(&bad), "--data-dir", path_arg(&data)], &[]);
    assert_eq!(code, Some(1));
    let config = check(&report, "config", "line 2");
    assert!(config["detail"].as_str().unwrap().contains("server.port"), "{config}");
}

/// `--host`/`--port` are where `serve` listens; any other command refuses them rather than
/// seeming to use them (before it touches anything).
#[test]
fn listen_flags_are_only_for_serve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for args in [
        vec!["backup", "--port", "4000"],
        vec!["--port", "4000", "doctor"],
        vec!["--host", "0.0.0.0", "migrate", "status"],
    ] {
        let mut all = args.clone();
        all.extend(["--data-dir", path_arg(&data)]);
        let out = run_cli(dir.path(), &all, SECRETS);
        assert_eq!(out.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stderr.contains("--port") || out.stderr.contains("--host"), "{args:?}: {}", out.stderr);
    }
    assert!(!data.exists(), "a refused command creates nothing");
}

/// With the server running on the data dir: the port is held by this server and the database
/// is open in it — both fine, not failures; secrets from the environment are named as such.
#[test]
fn doctor_recognises_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = BinaryServer::builder(dir.path()).start();
    let port = server.addr().port().to_string();
    let args = ["--config", path_arg(server.config_path()), "--data-dir", path_arg(server.data_dir())];
    let env = [("ADMIN_API_KEY", "test-admin-secret"), ("JWT_SECRET", JWT_SECRET), ("PORT", &port)];
    let (code, report, stderr) = doctor(dir.path(), &args, &env);
    assert_eq!(code, Some(0), "{report} {stderr}");
    assert_eq!(check(&report, "port", "held by a running ares")["status"], "ok");
    assert_eq!(check(&report, "migrations", "running server")["status"], "ok");
    assert_eq!(check(&report, "secrets", "$ADMIN_API_KEY")["status"], "ok");
    assert_eq!(check(&report, "secrets", "$JWT_SECRET")["status"], "ok");
}

/// The first Ctrl-C drains requests in flight (and says a second one stops at once); the
/// second stops at once, even with a request still in flight, and leaves no server.json.
#[tokio::test]
async fn a_second_interrupt_stops_at_once_while_draining() {
    use tokio::io::AsyncWriteExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mut server = BinaryServer::builder(dir.path()).config("[server]\nshutdown_grace_secs = 30").start();
    // A request in flight: its body is promised but never finished.
    let mut stalled = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    stalled
        .write_all(b"POST /api/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"em")
        .await
        .unwrap();
    // Signalled only once the server has the stalled request's head (the gauge also counts the
    // scrape that reads it): before that, the drain would find nothing to wait for.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = server
            .client()
            .get(server.url("/metrics"))
            .header("x-admin-secret", server.admin_secret())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let in_flight = metrics
            .lines()
            .find_map(|line| line.strip_prefix("ares_http_requests_in_flight "))
            .and_then(|value| value.trim().parse::<f64>().ok());
        if in_flight.is_some_and(|n| n >= 2.0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the stalled request never arrived: {in_flight:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    server.signal("INT");
    server.wait_for_stderr("send it again");
    let started = std::time::Instant::now();
    server.signal("INT");
    let status = server.wait();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "not the 30 s grace period: {:?}", started.elapsed());
    server.wait_for_stderr("stopping now");
    assert!(!server.data_dir().join("server.json").exists());
    drop(stalled);
}

/// A first start that cannot bind its port still shows the admin secret it generated (and
/// stored): the next start would not show it again.
#[test]
fn a_failed_bind_still_shows_the_generated_admin_secret() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let data = dir.path().join("data");
    let out = run_cli(dir.path(), &["--data-dir", path_arg(&data), "--port", &port], &[]);
    assert_eq!(out.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("cannot bind"), "{}", out.stderr);
    let stored = std::fs::read_to_string(data.join("secrets/admin_secret")).unwrap();
    let shown = out.stdout.lines().find_map(|l| l.strip_prefix("Generated an admin secret (shown once): "));
    assert_eq!(shown, Some(stored.trim()), "{}", out.stdout);
    drop(taken);
}

/// The polkit rule grants exactly one thing: user `ares` may start, stop and restart
/// `ares.service`. Evaluated by node where it is installed (polkit rules are JavaScript).
fn check_restart_rule(rule: &str) {
    let script = format!(
        r#"
const rules = [];
const polkit = {{ Result: {{ YES: "yes" }}, addRule: (f) => rules.push(f) }};
{rule}
const decide = (id, unit, verb, user) =>
  rules[0]({{ id, lookup: (k) => ({{ unit, verb }})[k] }}, {{ user }}) || "no";
const manage = "org.freedesktop.systemd1.manage-units";
console.log(JSON.stringify([
  decide(manage, "ares.service", "restart", "ares"),
  decide(manage, "ares.service", "stop", "ares"),
  decide(manage, "ssh.service", "restart", "ares"),
  decide(manage, "ares.service", "restart", "mallory"),
  decide("org.freedesktop.systemd1.manage-unit-files", "ares.service", "restart", "ares"),
]));
"#
    );
    match std::process::Command::new("node").arg("-e").arg(&script).output() {
        Ok(out) => {
            assert!(out.status.success(), "the rule is not valid JavaScript: {}", String::from_utf8_lossy(&out.stderr));
            let decisions = String::from_utf8_lossy(&out.stdout);
            assert_eq!(decisions.trim(), r#"["yes","yes","no","no","no"]"#, "{rule}");
        }
        Err(_) => eprintln!("node is not installed here: the polkit rule was checked as text only"),
    }
    assert!(rule.contains(r#"subject.user == "ares""#) && rule.contains(r#""ares.service""#), "{rule}");
}

/// The unit `install-service --print` shows has the sandbox the issue asks for and passes
/// `systemd-analyze verify` where systemd is installed; writing it (to a test directory, not
/// /etc) also creates the secrets file, root-only, and keeps it on a second run.
#[test]
fn install_service_writes_a_sandboxed_unit_that_systemd_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let binary = env!("CARGO_BIN_EXE_ares");
    let out = run_cli(dir.path(), &["install-service", "--print", "--binary", binary], &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let unit = out.stdout;
    for line in [
        format!("ExecStart={} serve --data-dir /var/lib/ares", std::fs::canonicalize(binary).unwrap().display()),
        "DynamicUser=yes".to_string(),
        "StateDirectory=ares".to_string(),
        "ProtectSystem=strict".to_string(),
        "ProtectHome=yes".to_string(),
        "PrivateTmp=yes".to_string(),
        "NoNewPrivileges=yes".to_string(),
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX".to_string(),
        "Restart=on-failure".to_string(),
        "EnvironmentFile=-/etc/ares/ares.env".to_string(),
    ] {
        assert!(unit.lines().any(|l| l == line), "no {line:?} in:\n{unit}");
    }
    // The deploy targets' working directories are the only other writable paths, and a
    // target that would need sudo is pointed at what works instead.
    let deploying = dir.path().join("deploying.toml");
    std::fs::write(
        &deploying,
        "[[deploy.targets]]\nname = \"ares\"\nworkdir = \"/opt/ares\"\ncommands = [\"sudo systemctl restart ares\"]\n",
    )
    .unwrap();
    let out =
        run_cli(dir.path(), &["install-service", "--print", "--binary", binary, "--config", path_arg(&deploying)], &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.lines().any(|l| l == "ReadWritePaths=-/opt/ares"), "{}", out.stdout);
    assert!(out.stderr.contains("systemctl restart --no-block ares"), "{}", out.stderr);
    assert!(!unit.contains("ReadWritePaths"), "no deploy targets, nothing else writable:\n{unit}");

    let unit_file = dir.path().join("ares.service");
    std::fs::write(&unit_file, &out.stdout).unwrap();
    match std::process::Command::new("systemd-analyze").arg("verify").arg(&unit_file).output() {
        Ok(verified) => assert!(
            verified.status.success() && verified.stderr.is_empty(),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&verified.stderr)
        ),
        Err(_) => eprintln!("systemd-analyze is not installed here: the unit was not verified by systemd"),
    }

    let units = dir.path().join("units");
    let env_file = dir.path().join("etc/ares.env");
    let polkit = dir.path().join("polkit-1/rules.d");
    std::fs::create_dir_all(polkit.parent().unwrap()).unwrap();
    let args = [
        "install-service",
        "--binary",
        "/bin/sh",
        "--unit-dir",
        path_arg(&units),
        "--env-file",
        path_arg(&env_file),
        "--polkit-dir",
        path_arg(&polkit),
    ];
    let out = run_cli(dir.path(), &args, &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("systemctl enable --now ares"), "{}", out.stdout);
    assert!(std::fs::read_to_string(units.join("ares.service")).unwrap().contains("ExecStart=/"), "unit written");
    let rule = std::fs::read_to_string(polkit.join("50-ares.rules")).expect("the restart rule is written");
    check_restart_rule(&rule);
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777, 0o600);
    std::fs::write(&env_file, "ADMIN_API_KEY=kept\n").unwrap();
    let out = run_cli(dir.path(), &args, &[]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), "ADMIN_API_KEY=kept\n", "an existing secrets file is kept");

    // A config the sandbox would hide (the test's temp dir is under /tmp on this machine) is
    // refused with what to do.
    if !dir.path().starts_with("/tmp") {
        eprintln!("the temp dir is not under /tmp here: the hidden-config refusal is not exercised");
        return;
    }
    let config = dir.path().join("ares.toml");
    std::fs::write(&config, "").unwrap();
    let hidden = [
        "install-service",
        "--config",
        path_arg(&config),
        "--unit-dir",
        path_arg(&units),
        "--env-file",
        path_arg(&env_file),
    ];
    let out = run_cli(dir.path(), &hidden, &[]);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("PrivateTmp=yes hides /tmp"), "{}", out.stderr);
}
