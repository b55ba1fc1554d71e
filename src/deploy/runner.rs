//! Running deploy targets. A request names a target; its configured commands run in order
//! through `sh -c`, each in its own process group so that cancel and timeout kill everything it
//! started. Output lines are captured in arrival order (capped, tail kept; bytes that are not
//! UTF-8 kept lossily), broadcast to SSE subscribers and persisted: at start, every second while
//! running, and at the end. A command is done when it exits, even if a background process it
//! started still holds its output pipe.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::Command;
use tokio::sync::{Notify, broadcast, mpsc, watch};

use super::output::CappedOutput;
use crate::app::App;
use crate::clock;
use crate::config::DeployTarget;
use crate::error::ApiError;
use crate::store::deploys::{self, DeployRecord};

/// How often a running deploy's output is saved.
const PERSIST_EVERY: Duration = Duration::from_secs(1);

/// After a command exits, output still arriving is collected until the pipe is quiet this long
/// (or closed), within [`DRAIN_AT_MOST`]: a background process it left may hold the pipe forever.
const DRAIN_QUIET: Duration = Duration::from_millis(200);
const DRAIN_AT_MOST: Duration = Duration::from_secs(2);

/// What SSE subscribers receive.
#[derive(Debug, Clone)]
pub enum DeployEvent {
    /// One output line; `seq` counts lines from 1, so a late subscriber can skip what its
    /// snapshot already holds.
    Output { seq: u64, line: String },
    /// The deploy ended; the final record.
    Finished(DeployRecord),
}

/// A deploy in progress.
pub struct Running {
    record: Mutex<(DeployRecord, CappedOutput)>,
    events: broadcast::Sender<DeployEvent>,
    cancel: Notify,
    finished: watch::Sender<Option<DeployRecord>>,
}

impl Running {
    /// The record as of now (output so far) and the number of lines it holds.
    pub fn snapshot(&self) -> (DeployRecord, u64) {
        let guard = match self.record.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (record, output) = &*guard;
        (DeployRecord { output: output.render(), ..record.clone() }, output.lines)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<DeployEvent> {
        self.events.subscribe()
    }

    /// The final record, once the deploy has ended (set before `Finished` is broadcast).
    pub fn finished_record(&self) -> Option<DeployRecord> {
        self.finished.borrow().clone()
    }

    fn push(&self, line: &str) {
        let seq = {
            let mut guard = match self.record.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            guard.1.push_line(line);
            guard.1.lines
        };
        let _ = self.events.send(DeployEvent::Output { seq, line: line.to_string() });
    }
}

pub struct Deployer {
    targets: Vec<DeployTarget>,
    output_cap: usize,
    /// Running deploys by id.
    running: Mutex<HashMap<String, Arc<Running>>>,
}

impl Deployer {
    pub fn new(targets: Vec<DeployTarget>, output_cap: usize) -> Deployer {
        Deployer { targets, output_cap, running: Mutex::new(HashMap::new()) }
    }

    pub fn target_names(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.name.as_str()).collect()
    }

    fn running_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Running>>> {
        match self.running.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn running(&self, id: &str) -> Option<Arc<Running>> {
        self.running_map().get(id).cloned()
    }

    /// Start a deploy of `target` (case-insensitive): 404 for an unknown target, 409 while
    /// the same target is running. Returns once the record is stored.
    pub async fn start(app: &Arc<App>, target: &str) -> Result<DeployRecord, ApiError> {
        let deployer = app.deployer();
        let wanted = target.trim().to_lowercase();
        let Some(config) = deployer.targets.iter().find(|t| t.name.to_lowercase() == wanted).cloned() else {
            let known = deployer.target_names().join(", ");
            return Err(ApiError::NotFound(format!(
                "Unknown deploy target '{target}'. Configured targets: {}",
                if known.is_empty() { "none (add [[deploy.targets]] to ares.toml)" } else { &known }
            )));
        };
        let now = clock::now_unix();
        let record = DeployRecord {
            id: format!("{}-{}", config.name, uuid::Uuid::now_v7().simple()),
            target: config.name.clone(),
            status: "running".into(),
            started_at: now,
            finished_at: None,
            output: String::new(),
            exit_code: None,
            note: None,
        };
        let running = Arc::new(Running {
            record: Mutex::new((record.clone(), CappedOutput::new(deployer.output_cap))),
            events: broadcast::channel(1024).0,
            cancel: Notify::new(),
            finished: watch::channel(None).0,
        });
        {
            // Check and claim under one lock, so two requests cannot both start the target.
            let mut map = deployer.running_map();
            if let Some((id, _)) = map.iter().find(|(_, r)| r.snapshot().0.target == config.name) {
                return Err(ApiError::Conflict(format!("Deploy already running for '{}' (id: {id})", config.name)));
            }
            map.insert(record.id.clone(), running.clone());
        }
        let stored = record.clone();
        if let Err(e) = app.store().write(move |txn| deploys::put(txn, &stored)).await {
            deployer.running_map().remove(&record.id);
            return Err(e.into());
        }
        tokio::spawn(execute(app.clone(), config, running));
        Ok(record)
    }

    /// Ask a running deploy to stop and wait (up to 15 s) for its final record.
    pub async fn cancel(&self, id: &str) -> Option<DeployRecord> {
        let running = self.running(id)?;
        let mut finished = running.finished.subscribe();
        running.cancel.notify_one();
        let wait = async {
            loop {
                if let Some(record) = finished.borrow().clone() {
                    return Some(record);
                }
                if finished.changed().await.is_err() {
                    return finished.borrow().clone();
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(15), wait).await.ok().flatten()
    }
}

/// Why a command stopped.
enum Ended {
    Exited(Option<i32>),
    TimedOut,
    Cancelled,
    SpawnFailed(String),
}

async fn execute(app: Arc<App>, config: DeployTarget, running: Arc<Running>) {
    let deadline = Instant::now() + Duration::from_secs(config.timeout_secs);
    let persister = tokio::spawn(persist_periodically(app.clone(), running.clone()));
    let mut ended = Ended::Exited(Some(0));
    for command in &config.commands {
        running.push(&format!("$ {command}"));
        ended = run_one(&config, command, &running, deadline, app.deployer().output_cap).await;
        if !matches!(ended, Ended::Exited(Some(0))) {
            break;
        }
    }
    persister.abort();
    // Wait until it has stopped: an abort lands only at an await, so a save already under way
    // could otherwise be queued after the final record and store a stale `running` one.
    let _ = persister.await;

    let (status, exit_code, note) = match &ended {
        Ended::Exited(Some(0)) => ("success", Some(0), None),
        Ended::Exited(code) => ("failed", *code, code.map_or(Some("killed by a signal".to_string()), |_| None)),
        Ended::TimedOut => ("failed", None, Some(format!("timed out after {} s", config.timeout_secs))),
        Ended::Cancelled => ("failed", None, Some("cancelled".to_string())),
        Ended::SpawnFailed(e) => ("failed", None, Some(format!("could not start: {e}"))),
    };
    match (&ended, exit_code) {
        (Ended::Exited(_), Some(code)) if code != 0 => running.push(&format!("[exited with code {code}]")),
        (_, _) => {
            if let Some(note) = &note {
                running.push(&format!("[deploy {note}]"));
            }
        }
    }
    let (mut record, _) = running.snapshot();
    record.status = status.into();
    record.finished_at = Some(clock::now_unix());
    record.exit_code = exit_code;
    record.note = note;
    let stored = record.clone();
    if let Err(e) = app.store().write(move |txn| deploys::put(txn, &stored)).await {
        tracing::error!(deploy = %record.id, error = %e, "could not store the final deploy record");
    }
    app.deployer().running_map().remove(&record.id);
    let outcome = match &ended {
        Ended::Exited(Some(0)) => "success",
        Ended::TimedOut => "timeout",
        Ended::Cancelled => "cancelled",
        Ended::Exited(_) | Ended::SpawnFailed(_) => "failed",
    };
    app.telemetry().metrics.deploy_finished(&config.name, outcome);
    tracing::info!(deploy = %record.id, status = %record.status, "deploy finished");
    // `finished` first (and stored even with no receiver): a subscriber that misses the
    // broadcast sees it there.
    running.finished.send_replace(Some(record.clone()));
    let _ = running.events.send(DeployEvent::Finished(record));
}

/// Save the output so far once a second while it changes.
async fn persist_periodically(app: Arc<App>, running: Arc<Running>) {
    let mut saved_lines = 0;
    loop {
        tokio::time::sleep(PERSIST_EVERY).await;
        let (record, lines) = running.snapshot();
        if lines != saved_lines {
            saved_lines = lines;
            app.store().write_detached(move |txn| deploys::put(txn, &record));
        }
    }
}

async fn run_one(
    config: &DeployTarget,
    command: &str,
    running: &Arc<Running>,
    deadline: Instant,
    max_line: usize,
) -> Ended {
    let mut cmd = Command::new("sh");
    // The server runs with umask 077 to keep its data dir private; what a deploy creates is the
    // operator's business, so it gets the operator's umask back.
    let umask = crate::private::operator_umask().map(|mask| format!("umask {mask:03o}\n")).unwrap_or_default();
    // stderr joins stdout in one pipe: two pipes read concurrently lose the order of the lines.
    cmd.arg("-c")
        .arg(format!("{umask}exec 2>&1\n{command}"))
        .envs(&config.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = &config.workdir {
        cmd.current_dir(dir);
    }
    // Its own process group: cancel and timeout kill the whole tree it starts.
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return Ended::SpawnFailed(e.to_string()),
    };
    let pid = child.id();
    let (lines_tx, mut lines) = mpsc::channel::<String>(256);
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward(stdout, lines_tx.clone(), max_line));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward(stderr, lines_tx.clone(), max_line));
    }
    drop(lines_tx);

    let finished = async {
        let status = loop {
            tokio::select! {
                line = lines.recv() => match line {
                    Some(line) => running.push(&line),
                    None => break child.wait().await,
                },
                status = child.wait() => break status,
            }
        };
        drain(&mut lines, running, DRAIN_QUIET, DRAIN_AT_MOST).await;
        status
    };
    let outcome = tokio::select! {
        status = finished => Ended::Exited(status.ok().and_then(|s| s.code())),
        () = tokio::time::sleep_until(deadline.into()) => Ended::TimedOut,
        () = running.cancel.notified() => Ended::Cancelled,
    };
    if matches!(outcome, Ended::TimedOut | Ended::Cancelled) {
        if let Some(pid) = pid {
            kill_group(pid).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        // Whatever the group printed before dying.
        drain(&mut lines, running, Duration::from_millis(100), DRAIN_AT_MOST).await;
    }
    outcome
}

/// Push the lines still arriving until the pipe closes, is quiet for `quiet`, or `at_most` has
/// passed.
async fn drain(lines: &mut mpsc::Receiver<String>, running: &Running, quiet: Duration, at_most: Duration) {
    let give_up = tokio::time::Instant::now() + at_most;
    loop {
        let wait = quiet.min(give_up.saturating_duration_since(tokio::time::Instant::now()));
        match tokio::time::timeout(wait, lines.recv()).await {
            Ok(Some(line)) => running.push(&line),
            Ok(None) | Err(_) => return,
        }
    }
}

/// Send `reader`'s lines until end of file: bytes that are not UTF-8 are replaced (never an
/// error that would stop reading and kill the writer with SIGPIPE), and a line longer than
/// `max_line` bytes keeps its last `max_line`. Once nobody listens (the command is done), the
/// rest is read and dropped, so a background process still writing is not killed either.
async fn forward<R: AsyncRead + Unpin>(mut reader: R, lines: mpsc::Sender<String>, max_line: usize) {
    let mut buf = vec![0u8; 8192];
    let mut pending: Vec<u8> = Vec::new();
    let mut listening = true;
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !listening {
            continue;
        }
        for piece in buf[..n].split_inclusive(|&b| b == b'\n') {
            pending.extend_from_slice(piece);
            let complete = pending.last() == Some(&b'\n');
            let keep = max_line + usize::from(complete);
            if pending.len() > keep {
                pending.drain(..pending.len() - keep);
            }
            if complete && lines.send(take_line(&mut pending)).await.is_err() {
                listening = false;
                break;
            }
        }
    }
    if listening && !pending.is_empty() {
        let _ = lines.send(take_line(&mut pending)).await;
    }
}

/// The line in `pending` without its line ending, as text; empties `pending`.
fn take_line(pending: &mut Vec<u8>) -> String {
    let end = pending.strip_suffix(b"\n").map_or(pending.len(), <[u8]>::len);
    let end = pending[..end].strip_suffix(b"\r").map_or(end, <[u8]>::len);
    let line = String::from_utf8_lossy(&pending[..end]).into_owned();
    pending.clear();
    line
}

/// SIGKILL the process group `pid` leads (through `kill`, since this crate has no unsafe code).
async fn kill_group(pid: u32) {
    let result = Command::new("kill").arg("-KILL").arg("--").arg(format!("-{pid}")).status().await;
    if let Err(e) = result {
        tracing::warn!(pid, error = %e, "could not kill a deploy's process group");
    }
}
