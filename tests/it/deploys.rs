//! Deployments and services (API.md §8 and the deploy issue): configured targets run in order
//! as process groups with captured, capped output; list, events (SSE), cancel, delete,
//! timeouts, persistence and restart reconciliation; service health and logs; the audit trail.
//!
//! Commands are kept short. Those that must outlive a check (`sleep 3x.y`) use a duration no
//! other test uses, are always cancelled, timed out or killed, and are swept by a
//! [`KillOnDrop`] guard even when the test fails. Long-ish waits are gated on a file the test
//! creates, bounded so that nothing loops forever if the test dies first.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::gateway::{SseEvent, SseReader, sse_events};
use crate::harness::{BinaryServer, TestServer, expect_error, expect_json};

/// Hang guard for a deploy to finish or a process to appear or vanish; not a timing assertion.
const WAIT: Duration = Duration::from_secs(10);

/// Waits (up to ~10 s) until the file `go` exists in the working directory.
const GATE: &str = "i=0; until [ -e go ] || [ $i -ge 200 ]; do sleep 0.05; i=$((i+1)); done";

/// A TOML literal string (paths and commands here never contain `'`).
fn lit(text: impl AsRef<str>) -> String {
    let text = text.as_ref();
    assert!(!text.contains('\''), "not a TOML literal string: {text}");
    format!("'{text}'")
}

fn lit_path(path: &Path) -> String {
    lit(path.to_str().expect("UTF-8 path"))
}

/// `[[deploy.targets]]` entries for `(name, commands)`.
fn targets(list: &[(&str, &[&str])]) -> String {
    list.iter()
        .map(|(name, commands)| {
            let commands: Vec<String> = commands.iter().map(lit).collect();
            format!("[[deploy.targets]]\nname = {}\ncommands = [{}]\n", lit(name), commands.join(", "))
        })
        .collect()
}

async fn post_deploy(server: &TestServer, target: &str) -> reqwest::Response {
    server.admin(Method::POST, "/api/admin/deploy").json(&json!({ "target": target })).send().await.unwrap()
}

/// Start a deploy, asserting the documented 200 body; returns its id.
async fn deploy(server: &TestServer, target: &str, canonical: &str) -> String {
    let body = expect_json(post_deploy(server, target).await, 200).await;
    assert_eq!(body["status"], "running", "{body}");
    assert_eq!(body["message"], format!("Deployment started for {canonical}"), "{body}");
    let id = body["id"].as_str().expect("an id").to_string();
    assert!(!id.is_empty());
    id
}

async fn get_deploy(server: &TestServer, id: &str) -> Value {
    server.admin_get(&format!("/api/admin/deploy/{id}")).await
}

/// Poll until the deploy is no longer running; returns the final record.
async fn wait_finished(server: &TestServer, id: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let record = get_deploy(server, id).await;
        if record["status"] != "running" {
            return record;
        }
        assert!(Instant::now() < deadline, "deploy {id} still running: {record}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Poll until the running deploy's output contains `needle`; returns the record.
async fn wait_output(server: &TestServer, id: &str, needle: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let record = get_deploy(server, id).await;
        if record["output"].as_str().unwrap().contains(needle) {
            return record;
        }
        assert_eq!(record["status"], "running", "finished before printing {needle:?}: {record}");
        assert!(Instant::now() < deadline, "deploy {id} never printed {needle:?}: {record}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The output lines the commands printed: without the server's `$ <command>` echo lines.
fn printed(record: &Value) -> Vec<String> {
    let output = record["output"].as_str().expect("output is a string");
    output.lines().filter(|l| !l.starts_with("$ ")).map(str::to_string).collect()
}

fn parse_rfc3339(text: &Value) -> i64 {
    let text = text.as_str().unwrap_or_else(|| panic!("not a timestamp: {text}"));
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("not RFC 3339 ({e}): {text}"))
        .unix_timestamp()
}

/// Whether a process whose command line matches `pattern` exists.
fn process_exists(pattern: &str) -> bool {
    let status = Command::new("pgrep").args(["-f", pattern]).output().expect("run pgrep").status;
    status.success()
}

async fn wait_process(pattern: &str, present: bool) {
    let deadline = Instant::now() + WAIT;
    while process_exists(pattern) != present {
        let what = if present { "never started" } else { "is still alive" };
        assert!(Instant::now() < deadline, "a process matching {pattern:?} {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills processes matching the pattern when dropped, so a failing test leaks nothing.
struct KillOnDrop(&'static str);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("pkill").args(["-KILL", "-f", self.0]).status();
    }
}

async fn audit_entries(server: &TestServer) -> Vec<Value> {
    server.admin_get("/api/admin/audit-log").await["entries"].as_array().unwrap().clone()
}

async fn list_ids(server: &TestServer) -> Vec<String> {
    let body = server.admin_get("/api/admin/deploys").await;
    body["deploys"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn a_deploy_runs_its_commands_in_order_in_its_workdir_with_its_env() {
    let workdir = tempfile::tempdir().unwrap();
    std::fs::write(workdir.path().join("marker.txt"), "from-the-workdir\n").unwrap();
    let config = format!(
        "{}workdir = {}\ntimeout_secs = 20\n[deploy.targets.env]\nGREETING = 'hello from env'\n",
        targets(&[(
            "web",
            &[
                "echo out1; sleep 0.2; echo err1 >&2; sleep 0.2; echo out2",
                "cat marker.txt",
                "echo \"$GREETING\" > greeting.txt",
                "cat greeting.txt >&2",
                "i=1; while [ $i -le 30 ]; do echo o$i; echo e$i >&2; i=$((i+1)); done",
            ],
        )]),
        lit_path(workdir.path()),
    );
    let server = TestServer::builder().config(&config).start();
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let id = deploy(&server, "web", "web").await;
    let record = wait_finished(&server, &id).await;
    let after = time::OffsetDateTime::now_utc().unix_timestamp();

    assert_eq!(record["id"], id.as_str());
    assert_eq!(record["target"], "web");
    assert_eq!(record["status"], "success", "{record}");
    assert_eq!(record["exit_code"], 0, "{record}");
    assert_eq!(record["note"], Value::Null, "{record}");
    // stdout and stderr interleaved as printed; the commands ran in order, in the workdir.
    // Also when they alternate faster than any reader could be scheduled.
    let mut expected: Vec<String> =
        ["out1", "err1", "out2", "from-the-workdir", "hello from env"].map(String::from).into();
    expected.extend((1..=30).flat_map(|i| [format!("o{i}"), format!("e{i}")]));
    assert_eq!(printed(&record), expected, "{record}");
    assert_eq!(std::fs::read_to_string(workdir.path().join("greeting.txt")).unwrap(), "hello from env\n");
    let (started, finished) = (parse_rfc3339(&record["started_at"]), parse_rfc3339(&record["finished_at"]));
    assert!(before <= started && started <= finished && finished <= after, "{record}");

    // The list carries the same record.
    let list = server.admin_get("/api/admin/deploys").await;
    assert_eq!(list["deploys"], json!([record]), "{list}");
}

#[tokio::test]
async fn a_failing_command_stops_the_deploy_with_its_exit_code() {
    let config = targets(&[("api", &["echo before", "exit 3", "echo after"])]);
    let server = TestServer::builder().config(&config).start();
    let id = deploy(&server, "api", "api").await;
    let record = wait_finished(&server, &id).await;
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(record["exit_code"], 3, "{record}");
    assert!(record["finished_at"].is_string(), "{record}");
    let output = record["output"].as_str().unwrap();
    assert!(output.lines().any(|l| l == "before"), "{record}");
    assert!(!output.contains("after"), "the command after the failure never ran: {record}");
}

#[tokio::test]
async fn unknown_targets_are_404_and_run_nothing() {
    let workdir = tempfile::tempdir().unwrap();
    let config = format!("{}workdir = {}\n", targets(&[("web", &["touch ran"])]), lit_path(workdir.path()));
    let server = TestServer::builder().config(&config).start();
    for target in ["nope", "web2", "", "../web"] {
        let body = expect_error(post_deploy(&server, target).await, 404, "NOT_FOUND").await;
        assert!(body["error"].as_str().unwrap().contains("web"), "names the configured targets: {body}");
    }
    // The list also names the targets a deploy may name (what the console offers).
    let targets = json!([{ "name": "web", "description": null, "timeout_secs": 600 }]);
    assert_eq!(server.admin_get("/api/admin/deploys").await, json!({ "deploys": [], "targets": targets }));
    assert!(audit_entries(&server).await.is_empty());
    assert!(!workdir.path().join("ran").exists(), "nothing ran");

    // A missing field is a client error, not a deploy.
    let response = server.admin(Method::POST, "/api/admin/deploy").json(&json!({})).send().await.unwrap();
    expect_error(response, 400, "INVALID_INPUT").await;
    // Only the admin may deploy.
    let response = server.client().post(server.url("/api/admin/deploy")).json(&json!({ "target": "web" }));
    expect_error(response.send().await.unwrap(), 401, "AUTH_MISSING").await;
    assert_eq!(server.admin_get("/api/admin/deploys").await, json!({ "deploys": [], "targets": targets }));
    assert!(!workdir.path().join("ran").exists(), "nothing ran");
}

#[tokio::test]
async fn targets_are_matched_case_insensitively() {
    let server = TestServer::builder().config(&targets(&[("web", &["echo hi"])])).start();
    let id = deploy(&server, "WeB", "web").await;
    let record = wait_finished(&server, &id).await;
    assert_eq!(record["target"], "web", "the configured name is recorded: {record}");
    assert_eq!(record["status"], "success", "{record}");
    assert_eq!(printed(&record), ["hi"]);
}

#[tokio::test]
async fn a_second_deploy_of_a_running_target_is_409_naming_the_running_id() {
    let workdir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}workdir = {}\n{}",
        targets(&[("slow", &["echo waiting", GATE])]),
        lit_path(workdir.path()),
        targets(&[("other", &["true"])]),
    );
    let server = TestServer::builder().config(&config).start();
    let id = deploy(&server, "slow", "slow").await;
    let running = wait_output(&server, &id, "waiting\n").await;
    assert_eq!(running["status"], "running");
    assert_eq!(running["finished_at"], Value::Null, "{running}");
    assert_eq!(running["exit_code"], Value::Null, "{running}");
    parse_rfc3339(&running["started_at"]);

    for spelling in ["slow", "SLOW"] {
        let body = expect_error(post_deploy(&server, spelling).await, 409, "CONFLICT").await;
        assert!(body["error"].as_str().unwrap().contains(&id), "names the running deploy: {body}");
    }
    // Another target is not blocked.
    let other = deploy(&server, "other", "other").await;
    assert_eq!(wait_finished(&server, &other).await["status"], "success");
    // Only the accepted deploys were recorded.
    assert_eq!(list_ids(&server).await, [other.clone(), id.clone()]);

    std::fs::write(workdir.path().join("go"), "").unwrap();
    assert_eq!(wait_finished(&server, &id).await["status"], "success");
    let again = deploy(&server, "slow", "slow").await;
    assert_ne!(again, id);
    std::fs::write(workdir.path().join("go"), "").unwrap();
    assert_eq!(wait_finished(&server, &again).await["status"], "success");
}

#[tokio::test]
async fn output_is_capped_keeping_the_tail() {
    let command = "i=1; while [ $i -le 400 ]; do echo \"line $i\"; i=$((i+1)); done";
    let config = format!("[deploy]\noutput_cap_bytes = 1024\n{}", targets(&[("noisy", &[command])]));
    let server = TestServer::builder().config(&config).start();
    let id = deploy(&server, "noisy", "noisy").await;
    let record = wait_finished(&server, &id).await;
    assert_eq!(record["status"], "success", "{record}");
    let output = record["output"].as_str().unwrap();
    assert!(output.len() <= 1024, "{} bytes: {output}", output.len());
    assert!(output.ends_with("line 400\n"), "{output}");
    let first = output.lines().next().unwrap();
    assert!(first.contains("truncated"), "says earlier output was dropped: {output}");
    // The tail is whole, consecutive lines.
    let kept: Vec<u32> = output.lines().skip(1).map(|l| l.strip_prefix("line ").unwrap().parse().unwrap()).collect();
    assert!(kept.len() > 10, "{output}");
    assert!(kept.windows(2).all(|w| w[1] == w[0] + 1), "{output}");
    assert!(!output.contains("line 1\n"), "{output}");

    // A cap below the minimum is a configuration error.
    let config = format!("[deploy]\noutput_cap_bytes = 1023\n{}", targets(&[("noisy", &["true"])]));
    let Err(error) = ares::config::load_str(&config, "test.toml", &|_: &str| None) else {
        panic!("a cap below 1024 is rejected");
    };
    let error = error.to_string();
    assert!(error.contains("output_cap_bytes"), "{error}");
}

#[tokio::test]
async fn a_timeout_kills_the_whole_process_group() {
    let _sweep = KillOnDrop("sleep 3[34].125");
    let config = format!("{}timeout_secs = 1\n", targets(&[("stuck", &["echo started; sleep 33.125 & sleep 34.125"])]));
    let server = TestServer::builder().config(&config).start();
    let id = deploy(&server, "stuck", "stuck").await;
    let record = wait_finished(&server, &id).await;
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(record["note"], "timed out after 1 s", "{record}");
    assert_eq!(record["exit_code"], Value::Null, "{record}");
    assert!(record["output"].as_str().unwrap().contains("started\n"), "output before the kill is kept: {record}");
    // Both the foreground sleep and the one the shell put in the background are gone.
    wait_process("sleep 33.125", false).await;
    wait_process("sleep 34.125", false).await;
}

#[tokio::test]
async fn cancel_kills_the_process_group_and_delete_removes_finished_records() {
    let _sweep = KillOnDrop("sleep 3[56].375");
    let config = targets(&[("stuck", &["echo started; sleep 35.375 & sleep 36.375", "echo never"])]);
    let server = TestServer::builder().config(&config).start();
    let id = deploy(&server, "stuck", "stuck").await;
    wait_output(&server, &id, "started\n").await;
    wait_process("sleep 35.375", true).await;
    wait_process("sleep 36.375", true).await;

    // A running deploy cannot be deleted.
    let path = format!("/api/admin/deploy/{id}");
    let response = server.admin(Method::DELETE, &path).send().await.unwrap();
    expect_error(response, 409, "CONFLICT").await;

    let cancel = format!("/api/admin/deploy/{id}/cancel");
    let record = expect_json(server.admin(Method::POST, &cancel).send().await.unwrap(), 200).await;
    assert_eq!(record["id"], id.as_str());
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(record["note"], "cancelled", "{record}");
    assert!(record["finished_at"].is_string(), "{record}");
    assert!(!record["output"].as_str().unwrap().contains("never"), "later commands do not run: {record}");
    wait_process("sleep 35.375", false).await;
    wait_process("sleep 36.375", false).await;
    assert_eq!(get_deploy(&server, &id).await, record, "the stored record is the one cancel returned");

    // Cancelling again, or a deploy that does not exist.
    let body = expect_error(server.admin(Method::POST, &cancel).send().await.unwrap(), 409, "CONFLICT").await;
    assert!(body["error"].as_str().unwrap().contains(&id), "{body}");
    let response = server.admin(Method::POST, "/api/admin/deploy/stuck-nope/cancel").send().await.unwrap();
    expect_error(response, 404, "NOT_FOUND").await;

    // Finished: deleted once, then gone.
    let response = server.admin(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(response.status(), 204);
    assert!(response.text().await.unwrap().is_empty());
    expect_error(server.admin(Method::GET, &path).send().await.unwrap(), 404, "NOT_FOUND").await;
    expect_error(server.admin(Method::DELETE, &path).send().await.unwrap(), 404, "NOT_FOUND").await;
    assert!(list_ids(&server).await.is_empty());
    let response = server.admin(Method::GET, &format!("{path}/events")).send().await.unwrap();
    expect_error(response, 404, "NOT_FOUND").await;
}

#[tokio::test]
async fn the_list_holds_the_20_newest_deploys_newest_first() {
    let config = targets(&[("a", &["true"]), ("b", &["true"]), ("c", &["false"])]);
    let server = TestServer::builder().config(&config).start();
    let mut started = Vec::new();
    for i in 0..23 {
        let target = ["a", "b", "c"][i % 3];
        let id = deploy(&server, target, target).await;
        wait_finished(&server, &id).await;
        started.push(id);
    }
    let body = server.admin_get("/api/admin/deploys").await;
    let deploys = body["deploys"].as_array().unwrap();
    let ids: Vec<&str> = deploys.iter().map(|d| d["id"].as_str().unwrap()).collect();
    let newest: Vec<&str> = started.iter().rev().take(20).map(String::as_str).collect();
    assert_eq!(ids, newest);
    for item in deploys {
        let status = if item["target"] == "c" { "failed" } else { "success" };
        assert_eq!(item["status"], status, "{item}");
        assert_eq!(item, &get_deploy(&server, item["id"].as_str().unwrap()).await);
    }
    // Older records are still there, just not listed.
    assert_eq!(get_deploy(&server, &started[0]).await["target"], "a");
}

fn event<'a>(events: &'a [SseEvent], index: usize, name: &str) -> &'a SseEvent {
    let event = events.get(index).unwrap_or_else(|| panic!("no event {index}: {events:?}"));
    assert_eq!(event.name.as_deref(), Some(name), "{events:?}");
    event
}

#[tokio::test]
async fn events_stream_state_then_output_then_status_and_late_subscribers_get_the_result() {
    let workdir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}workdir = {}\n",
        targets(&[("web", &["echo alpha", &format!("{GATE}; echo beta; echo gamma; echo delta")])]),
        lit_path(workdir.path()),
    );
    let server = TestServer::builder().config(&config).start();
    let id = deploy(&server, "web", "web").await;
    // The second command is waiting for the gate, having printed nothing yet.
    let so_far = wait_output(&server, &id, "$ i=0").await;

    let response = server.admin(Method::GET, &format!("/api/admin/deploy/{id}/events")).send().await.unwrap();
    let mut reader = SseReader::new(response);
    let state = reader.next_event().await.expect("a state event");
    assert_eq!(state.name.as_deref(), Some("state"), "{state:?}");
    let state = state.json();
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["target"], "web");
    assert_eq!(state["status"], "running");
    assert_eq!(state["output"], so_far["output"], "the snapshot holds the output so far");
    assert!(state["output"].as_str().unwrap().contains("alpha\n"), "{state}");

    std::fs::write(workdir.path().join("go"), "").unwrap();
    let events = reader.rest().await;
    let last = events.len() - 1;
    let lines: Vec<&str> = events[..last].iter().map(|e| e.data.as_str()).collect();
    assert!(events[..last].iter().all(|e| e.name.as_deref() == Some("output")), "{events:?}");
    assert_eq!(lines, ["beta", "gamma", "delta"], "the lines after the snapshot, in order, once each");
    let status = event(&events, last, "status").json();
    assert_eq!(status["status"], "success", "{status}");
    assert_eq!(status["exit_code"], 0, "{status}");
    let expected = format!("{}beta\ngamma\ndelta\n", state["output"].as_str().unwrap());
    assert_eq!(status["output"], expected.as_str(), "snapshot + streamed lines = the whole output");
    let record = get_deploy(&server, &id).await;
    assert_eq!(status, record, "the status event carries the final record");

    // After the end: the state and the final status at once, then the stream closes.
    let response = server.admin(Method::GET, &format!("/api/admin/deploy/{id}/events")).send().await.unwrap();
    let events = sse_events(response).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let state = event(&events, 0, "state").json();
    assert_eq!((&state["status"], &state["output"]), (&record["status"], &record["output"]), "{state}");
    assert_eq!(event(&events, 1, "status").json(), record);

    let response = server.admin(Method::GET, "/api/admin/deploy/web-none/events").send().await.unwrap();
    expect_error(response, 404, "NOT_FOUND").await;
    let response = server.get(&format!("/api/admin/deploy/{id}/events")).send().await.unwrap();
    expect_error(response, 401, "AUTH_MISSING").await;
}

#[tokio::test]
async fn finished_deploys_survive_a_graceful_restart() {
    let config = targets(&[("good", &["echo fine"]), ("bad", &["echo oops >&2; exit 2"])]);
    let server = TestServer::builder().config(&config).start();
    let good = deploy(&server, "good", "good").await;
    let good = wait_finished(&server, &good).await;
    let bad = deploy(&server, "bad", "bad").await;
    let bad = wait_finished(&server, &bad).await;
    assert_eq!((&good["status"], &bad["status"], &bad["exit_code"]), (&json!("success"), &json!("failed"), &json!(2)));
    let listed = server.admin_get("/api/admin/deploys").await;
    let targets = json!([
        { "name": "good", "description": null, "timeout_secs": 600 },
        { "name": "bad", "description": null, "timeout_secs": 600 },
    ]);
    assert_eq!(listed, json!({ "deploys": [bad, good], "targets": targets }));

    let server = server.restart();
    assert_eq!(server.admin_get("/api/admin/deploys").await, listed);
    assert_eq!(get_deploy(&server, good["id"].as_str().unwrap()).await, good);
    assert_eq!(get_deploy(&server, bad["id"].as_str().unwrap()).await, bad);
}

#[tokio::test]
async fn a_deploy_running_when_the_server_died_is_marked_interrupted_at_the_next_start() {
    let _sweep = KillOnDrop("sleep 37.625");
    let root = tempfile::tempdir().unwrap();
    let config = targets(&[("long", &["echo started; sleep 37.625"])]);
    let mut server = BinaryServer::builder(root.path()).config(&config).start();
    let get = |server: &BinaryServer, path: &str| {
        let request = server.client().get(server.url(path)).header("x-admin-secret", server.admin_secret());
        async move { expect_json(request.send().await.unwrap(), 200).await }
    };
    let post = server.client().post(server.url("/api/admin/deploy")).header("x-admin-secret", server.admin_secret());
    let started = expect_json(post.json(&json!({ "target": "long" })).send().await.unwrap(), 200).await;
    let id = started["id"].as_str().unwrap().to_string();
    let path = format!("/api/admin/deploy/{id}");
    let deadline = Instant::now() + WAIT;
    while !get(&server, &path).await["output"].as_str().unwrap().contains("started") {
        assert!(Instant::now() < deadline, "the deploy never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill();

    let server = BinaryServer::builder(root.path()).config(&config).start();
    let record = get(&server, &path).await;
    assert_eq!(record["status"], "failed", "{record}");
    assert_eq!(record["note"], "interrupted by restart", "{record}");
    assert!(record["finished_at"].is_string(), "{record}");
    let listed = get(&server, "/api/admin/deploys").await;
    assert_eq!(listed["deploys"], json!([record]));
    // The target is free again.
    let post = server.client().post(server.url("/api/admin/deploy")).header("x-admin-secret", server.admin_secret());
    let cancel_me = expect_json(post.json(&json!({ "target": "long" })).send().await.unwrap(), 200).await;
    let cancel = format!("/api/admin/deploy/{}/cancel", cancel_me["id"].as_str().unwrap());
    let request = server.client().post(server.url(&cancel)).header("x-admin-secret", server.admin_secret());
    assert_eq!(expect_json(request.send().await.unwrap(), 200).await["note"], "cancelled");
    // The first deploy's shell was orphaned by the kill; `_sweep` ends it.
}

#[tokio::test]
async fn services_report_health_and_the_servers_own_pid() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let own = listener.local_addr().unwrap().port();
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!(
        r#"
[[services]]
name = "ares"
port = {own}
health_url = "http://127.0.0.1:{own}/health"
[[services]]
name = "itself"
port = {own}
[[services]]
name = "sick"
health_url = "http://127.0.0.1:{own}/nope"
[[services]]
name = "gone"
port = {unused}
health_url = "http://127.0.0.1:{unused}/health"
"#
    );
    let server = TestServer::builder().config(&config).listener(listener).start();
    assert_eq!(server.addr().port(), own);
    let pid = std::process::id();
    let services = server.admin_get("/api/admin/services").await;
    assert_eq!(
        services,
        json!({
            "ares": { "status": "running", "pid": pid, "port": own },
            "itself": { "status": "running", "pid": pid, "port": own },
            "sick": { "status": "degraded", "pid": null, "port": null },
            "gone": { "status": "stopped", "pid": null, "port": unused },
        })
    );
    expect_error(server.get("/api/admin/services").send().await.unwrap(), 401, "AUTH_MISSING").await;

    // None configured: the server itself is still there (issue 16); a configured `ares` (above)
    // wins over it.
    let bare = TestServer::start();
    let services = bare.admin_get("/api/admin/services").await;
    let itself = &services["ares"];
    assert_eq!(services.as_object().unwrap().len(), 1, "{services}");
    assert_eq!((itself["status"].as_str(), itself["pid"].as_u64()), (Some("running"), Some(u64::from(pid))));
    assert_eq!(itself["port"].as_u64(), Some(u64::from(bare.addr().port())));
    assert_eq!(itself["version"], env!("CARGO_PKG_VERSION"));
    assert!(itself["uptime_secs"].is_u64(), "{itself}");
    // Its systemd unit when it runs as one (read from its cgroup), else null.
    let unit = itself.get("unit").expect("the unit is always reported");
    assert!(unit.is_null() || unit.as_str().is_some_and(|u| u.ends_with(".service")), "{itself}");
}

/// The server's own recent log lines, from the ring `ares serve` keeps: what it logged after
/// start is there, `?lines=N` bounds them, and no key appears.
#[tokio::test]
async fn the_ares_service_shows_the_servers_own_recent_log_lines() {
    let root = tempfile::tempdir().unwrap();
    let server = BinaryServer::builder(root.path()).config("[observability]\nlog_buffer_lines = 50\n").start();
    let key = format!("ares_{}", "5ec2e7".repeat(11).chars().take(64).collect::<String>());
    let response = server.client().get(server.url("/v1/agents")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let get = |path: &str| server.client().get(server.url(path)).header("x-admin-secret", server.admin_secret());
    let body = expect_json(get("/api/admin/services/ares/logs").send().await.unwrap(), 200).await;
    assert_eq!(body["service"], "ares");
    let lines: Vec<&str> = body["lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(lines.iter().any(|l| l.contains("serving")), "the start-up line: {lines:?}");
    assert!(lines.iter().any(|l| l.contains("WARN") && l.contains("failed authentication")), "{lines:?}");
    assert!(lines.iter().all(|l| !l.contains("5ec2e7")), "no key in the log: {lines:?}");
    let two = expect_json(get("/api/admin/services/ares/logs?lines=2").send().await.unwrap(), 200).await;
    assert_eq!(two["lines"].as_array().unwrap().len(), 2);
    assert_eq!(two["lines"][1].as_str(), lines.last().copied(), "the newest lines, oldest first");
    let services = expect_json(get("/api/admin/services").send().await.unwrap(), 200).await;
    assert_eq!(services["ares"]["pid"].as_u64(), Some(u64::from(server.pid())));
}

#[tokio::test]
async fn service_logs_are_the_last_100_lines_of_the_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("app.log");
    let text: String = (1..=150).map(|i| format!("app line {i}\n")).collect();
    std::fs::write(&long, text).unwrap();
    let short = dir.path().join("short.log");
    std::fs::write(&short, "one\ntwo\n").unwrap();
    let config = format!(
        "[[services]]\nname = 'app'\nlog_file = {}\n[[services]]\nname = 'short'\nlog_file = {}\n\
         [[services]]\nname = 'quiet'\nport = 9\n",
        lit_path(&long),
        lit_path(&short)
    );
    let server = TestServer::builder().config(&config).start();

    let body = server.admin_get("/api/admin/services/app/logs").await;
    let expected: Vec<String> = (51..=150).map(|i| format!("app line {i}")).collect();
    assert_eq!(body, json!({ "service": "app", "lines": expected }));
    let body = server.admin_get("/api/admin/services/short/logs").await;
    assert_eq!(body, json!({ "service": "short", "lines": ["one", "two"] }));

    for name in ["nope", "quiet"] {
        let response = server.admin(Method::GET, &format!("/api/admin/services/{name}/logs")).send().await.unwrap();
        expect_error(response, 404, "NOT_FOUND").await;
    }
}

#[tokio::test]
async fn deploy_triggers_cancels_and_deletes_are_audited() {
    let _sweep = KillOnDrop("sleep 38.875");
    let config = targets(&[("web", &["true"]), ("stuck", &["sleep 38.875"])]);
    let server = TestServer::builder().config(&config).start();
    let web = deploy(&server, "web", "web").await;
    wait_finished(&server, &web).await;
    let stuck = deploy(&server, "Stuck", "stuck").await;
    // Rejected requests leave no trace.
    expect_error(post_deploy(&server, "stuck").await, 409, "CONFLICT").await;
    expect_error(post_deploy(&server, "nope").await, 404, "NOT_FOUND").await;
    let response = server.admin(Method::DELETE, &format!("/api/admin/deploy/{stuck}")).send().await.unwrap();
    expect_error(response, 409, "CONFLICT").await;

    wait_process("sleep 38.875", true).await;
    let cancel = format!("/api/admin/deploy/{stuck}/cancel");
    expect_json(server.admin(Method::POST, &cancel).send().await.unwrap(), 200).await;
    expect_error(server.admin(Method::POST, &cancel).send().await.unwrap(), 409, "CONFLICT").await;
    let delete = format!("/api/admin/deploy/{web}");
    assert_eq!(server.admin(Method::DELETE, &delete).send().await.unwrap().status(), 204);
    expect_error(server.admin(Method::DELETE, &delete).send().await.unwrap(), 404, "NOT_FOUND").await;

    let entries = audit_entries(&server).await;
    let summary: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            assert_eq!(e["resource_type"], "deploy", "{e}");
            assert_eq!(e["actor"], "admin", "{e}");
            (e["action"].as_str().unwrap(), e["legacy_action"].as_str().unwrap(), e["resource_id"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("deploy.deleted", "delete_deploy", web.as_str()),
            ("deploy.cancelled", "cancel_deploy", stuck.as_str()),
            ("deploy.triggered", "trigger_deploy", stuck.as_str()),
            ("deploy.triggered", "trigger_deploy", web.as_str()),
        ],
        "{entries:?}"
    );
    assert_eq!(entries[1]["details"]["target"], "stuck");
    assert_eq!(entries[2]["details"]["target"], "stuck");
    assert_eq!(entries[3]["details"]["target"], "web");
    wait_process("sleep 38.875", false).await;
}
