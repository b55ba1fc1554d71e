//! Service status and logs: from systemd when it runs here (`systemctl show`, `journalctl`),
//! else from the configured health URL and log file. Names come from `[[services]]` only, so
//! nothing a client sends reaches a command line.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::Command;

use crate::config::ServiceConfig;

/// Lines returned by the logs endpoint.
pub const LOG_LINES: usize = 100;

/// Whether systemd is the init system here (its runtime directory exists).
pub fn systemd_present() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The systemd unit this process runs in (`ares.service` under `ares install-service`'s
/// unit), read from its cgroup; `None` outside a system service.
pub fn own_unit() -> Option<String> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    unit_of_cgroups(&cgroups)
}

/// `0::/system.slice/ares.service` (cgroup v2) or `1:name=systemd:/system.slice/ares.service`.
fn unit_of_cgroups(cgroups: &str) -> Option<String> {
    cgroups.lines().find_map(|line| {
        let path = line.rsplit(':').next()?;
        path.split('/').rev().find(|part| part.ends_with(".service")).map(str::to_string)
    })
}

/// `{"status": running|stopped|degraded, "pid": number|null, "port": number|null}`.
pub async fn status(service: &ServiceConfig, own_port: Option<u16>) -> Value {
    let itself = own_port.is_some() && service.port == own_port;
    if let (Some(unit), true) = (&service.unit, systemd_present())
        && let Some((state, pid)) = systemctl_show(unit).await
    {
        let status = match state.as_str() {
            "active" | "reloading" => "running",
            "activating" | "deactivating" => "degraded",
            _ => "stopped",
        };
        return json!({ "status": status, "pid": pid, "port": service.port });
    }
    let pid = itself.then(std::process::id);
    let status = match &service.health_url {
        Some(url) => probe(url.clone()).await,
        None if itself => "running",
        None => "unknown",
    };
    json!({ "status": status, "pid": pid, "port": service.port })
}

async fn systemctl_show(unit: &str) -> Option<(String, Option<u32>)> {
    let output = Command::new("systemctl")
        .args(["show", unit, "--property=ActiveState,MainPID", "--no-pager"])
        .output()
        .await
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut state = None;
    let mut pid = None;
    for line in text.lines() {
        if let Some(value) = line.strip_prefix("ActiveState=") {
            state = Some(value.trim().to_string());
        } else if let Some(value) = line.strip_prefix("MainPID=") {
            pid = value.trim().parse::<u32>().ok().filter(|p| *p > 0);
        }
    }
    state.map(|s| (s, pid))
}

/// 2xx → running, another status → degraded, no answer → stopped.
async fn probe(url: String) -> &'static str {
    let result = tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(3)))
            .build()
            .new_agent();
        agent.get(&url).call().map(|r| r.status().as_u16())
    })
    .await;
    match result {
        Ok(Ok(status)) if (200..300).contains(&status) => "running",
        Ok(Ok(_)) => "degraded",
        _ => "stopped",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("Service '{0}' has no log source: configure a systemd unit or log_file")]
    NoSource(String),
    #[error("Failed to read logs: {0}")]
    Read(String),
}

/// The last [`LOG_LINES`] lines: `journalctl -u` when systemd runs and a unit is set, else the
/// tail of `log_file`.
pub async fn logs(service: &ServiceConfig) -> Result<Vec<String>, LogError> {
    if let (Some(unit), true) = (&service.unit, systemd_present()) {
        let output = Command::new("journalctl")
            .args(["-u", unit, "-n", &LOG_LINES.to_string(), "--no-pager", "-o", "short-iso"])
            .output()
            .await
            .map_err(|e| LogError::Read(e.to_string()))?;
        return Ok(String::from_utf8_lossy(&output.stdout).lines().map(str::to_string).collect());
    }
    let Some(path) = service.log_file.clone() else {
        return Err(LogError::NoSource(service.name.clone()));
    };
    tokio::task::spawn_blocking(move || tail(&path, LOG_LINES))
        .await
        .map_err(|e| LogError::Read(e.to_string()))?
        .map_err(|e| LogError::Read(e.to_string()))
}

/// The last `count` lines of a file, reading at most its last 1 MiB.
fn tail(path: &Path, count: usize) -> std::io::Result<Vec<String>> {
    const WINDOW: u64 = 1024 * 1024;
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(WINDOW);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // probably a partial line
    }
    let from = lines.len().saturating_sub(count);
    Ok(lines[from..].iter().map(|l| l.to_string()).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_own_unit_is_read_from_the_cgroup_path() {
        assert_eq!(super::unit_of_cgroups("0::/system.slice/ares.service\n").as_deref(), Some("ares.service"));
        let v1 = "12:pids:/system.slice/ares-eu.service\n1:name=systemd:/system.slice/ares-eu.service\n";
        assert_eq!(super::unit_of_cgroups(v1).as_deref(), Some("ares-eu.service"));
        assert_eq!(super::unit_of_cgroups("0::/user.slice/user-1000.slice/session-3.scope\n"), None);
        assert_eq!(super::unit_of_cgroups("0::/\n"), None);
    }

    use super::*;

    #[test]
    fn tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let text: String = (0..250).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let lines = tail(&path, 100).unwrap();
        assert_eq!(lines.len(), 100);
        assert_eq!(lines[0], "line 150");
        assert_eq!(lines[99], "line 249");
        assert!(tail(&dir.path().join("missing"), 10).is_err());
    }
}
