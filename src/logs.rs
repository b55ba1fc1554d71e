//! The server's own recent log lines, kept in memory for `GET /api/admin/services/ares/logs`:
//! an operator without a terminal (or without systemd) can still read what the server said.
//!
//! `ares serve` tees its log output into a bounded ring (`[observability].log_buffer_lines`).
//! Nothing secret is logged in the first place; as a second line of defence, anything shaped
//! like an API key or a bearer token is masked on the way in.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

static RING: OnceLock<Ring> = OnceLock::new();

/// Whether every request is logged at INFO (`[server].log_format = "json"`: log shippers want an
/// access log) rather than at DEBUG (text logs are read by people).
static ACCESS_LOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_access_log(on: bool) {
    ACCESS_LOG.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub fn access_log() -> bool {
    ACCESS_LOG.load(std::sync::atomic::Ordering::Relaxed)
}

struct Ring {
    capacity: usize,
    lines: Mutex<VecDeque<String>>,
}

/// Start keeping the last `capacity` lines (once per process; later calls keep the first ring).
pub fn install(capacity: usize) -> RingWriter {
    let _ =
        RING.set(Ring { capacity: capacity.max(1), lines: Mutex::new(VecDeque::with_capacity(capacity.min(4096))) });
    RingWriter
}

/// The last `n` lines, oldest first; empty when the process keeps no ring (e.g. the server runs
/// inside tests or another program).
pub fn recent(n: usize) -> Vec<String> {
    let Some(ring) = RING.get() else { return Vec::new() };
    let Ok(lines) = ring.lines.lock() else { return Vec::new() };
    lines.iter().skip(lines.len().saturating_sub(n)).cloned().collect()
}

/// Where the log formatter writes: each write is one formatted event.
#[derive(Clone, Copy)]
pub struct RingWriter;

impl Write for RingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(ring) = RING.get()
            && let Ok(mut lines) = ring.lines.lock()
        {
            for line in String::from_utf8_lossy(buf).lines().filter(|l| !l.trim().is_empty()) {
                if lines.len() == ring.capacity {
                    lines.pop_front();
                }
                lines.push_back(mask_secrets(line));
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RingWriter {
    type Writer = RingWriter;

    fn make_writer(&'a self) -> RingWriter {
        RingWriter
    }
}

/// Mask API keys (`ares_` + hex) and bearer tokens.
fn mask_secrets(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("ares_") {
        out.push_str(&rest[..at + "ares_".len()]);
        rest = &rest[at + "ares_".len()..];
        let hex = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex >= 16 {
            out.push_str("***");
            rest = &rest[hex..];
        }
    }
    out.push_str(rest);
    match out.find("Bearer ") {
        Some(at) => {
            let token_start = at + "Bearer ".len();
            let token_len =
                out[token_start..].find(|c: char| c.is_whitespace() || c == '"').unwrap_or(out.len() - token_start);
            out.replace_range(token_start..token_start + token_len, "***");
            out
        }
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_bearer_tokens_are_masked_and_the_rest_kept() {
        let key = format!("ares_{}", "ab12".repeat(16));
        assert_eq!(mask_secrets(&format!("key {key} used")), "key ares_*** used");
        assert_eq!(mask_secrets("Authorization: Bearer eyJhbGciOi.x.y rest"), "Authorization: Bearer *** rest");
        assert_eq!(mask_secrets("the ares_prefix table, ares_ab"), "the ares_prefix table, ares_ab");
        assert_eq!(mask_secrets("plain line"), "plain line");
    }
}
