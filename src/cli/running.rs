//! Talking to the server that holds the database: commands that cannot open the file while it
//! serves (`backup`, `migrate status`) ask it through the admin API instead, at the address it
//! wrote to `data/server.json`, with the admin secret found as the server finds it.

use std::time::Duration;

use super::{Failure, process_env};
use crate::GlobalArgs;
use ares::auth::secrets;

pub struct RunningServer {
    addr: String,
    secret: String,
    /// Where the secret came from (`$ADMIN_API_KEY`, a file), for messages.
    pub source: String,
}

/// Where the data dir's server listens, from the `data/server.json` it wrote at start.
pub fn listening_addr(global: &GlobalArgs) -> Result<String, Failure> {
    let server_file = global.data_dir.join(super::serve::SERVER_FILE);
    let info: serde_json::Value =
        std::fs::read(&server_file).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).ok_or_else(|| {
            Failure::runtime(format!(
                "no server is running on {} ({} is missing): start `ares serve`, or give its address with --url or \
                 ARES_URL",
                global.data_dir.display(),
                server_file.display()
            ))
        })?;
    Ok(info.get("addr").and_then(serde_json::Value::as_str).unwrap_or_default().to_string())
}

impl RunningServer {
    pub fn find(global: &GlobalArgs, config: &ares::config::Config) -> Result<RunningServer, Failure> {
        let addr = listening_addr(global)?;
        let (secret, source) =
            secrets::find_admin_secret(&config.auth, &global.data_dir, &process_env).ok_or_else(|| {
                Failure::runtime(format!(
                    "the server is running but no admin secret was found: set ADMIN_API_KEY (or ${}) as the server \
                     has it, or keep it in {}",
                    config.auth.api_key_env,
                    global.data_dir.join("secrets/admin_secret").display()
                ))
            })?;
        let source = match &source {
            secrets::SecretSource::Env(name) => format!("${name}"),
            secrets::SecretSource::File(path) | secrets::SecretSource::Generated(path) => path.display().to_string(),
        };
        Ok(RunningServer { addr, secret, source })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `method path` on the admin API, within `timeout`; the JSON answer of a 2xx.
    pub fn call(&self, method: &str, path: &str, timeout: Duration) -> Result<serde_json::Value, Failure> {
        let url = format!("http://{}{path}", self.addr);
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into();
        let sent = match method {
            "POST" => agent.post(&url).header("X-Admin-Secret", &self.secret).send_empty(),
            _ => agent.get(&url).header("X-Admin-Secret", &self.secret).call(),
        };
        let mut response =
            sent.map_err(|e| Failure::runtime(format!("cannot reach the running server at {url}: {e}")))?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().map_err(|e| Failure::runtime(e.to_string()))?;
        if status == 401 || status == 403 {
            return Err(Failure::runtime(format!(
                "the server refused the admin secret from {} (HTTP {status}): set ADMIN_API_KEY to the secret the \
                 server runs with",
                self.source
            )));
        }
        if !(200..300).contains(&status) {
            return Err(Failure::runtime(format!("the server answered {status}: {body}")));
        }
        serde_json::from_str(&body).map_err(|e| Failure::runtime(format!("unexpected answer from the server: {e}")))
    }
}
