//! The server's own secrets: the JWT signing key and the admin secret.
//!
//! Configured values come from the environment (API.md §3.2, §3.6). When one is not
//! configured, a strong random value is generated on first start and kept in
//! `<data>/secrets/` with mode 0600, so a local instance needs no setup and keeps its
//! tokens valid across restarts.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use rand::RngCore as _;

use crate::config::{AuthConfig, EnvLookup};

/// Minimum JWT secret length (API.md §3.2).
pub const MIN_JWT_SECRET_LEN: usize = 32;

const SECRETS_DIR: &str = "secrets";
const JWT_FILE: &str = "jwt_secret";
const ADMIN_FILE: &str = "admin_secret";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("JWT_SECRET must be at least 32 characters")]
    JwtTooShort,
    #[error("{} holds a JWT secret shorter than 32 characters; delete it to generate a new one", path.display())]
    StoredJwtTooShort { path: PathBuf },
    #[error("{} is empty; delete it to generate a new one", path.display())]
    StoredEmpty { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

/// Where a secret came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
    /// Created just now and written to this path.
    Generated(PathBuf),
}

pub struct Secrets {
    pub jwt_secret: String,
    pub jwt_source: SecretSource,
    pub admin_secret: String,
    pub admin_source: SecretSource,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("jwt_source", &self.jwt_source)
            .field("admin_source", &self.admin_source)
            .finish_non_exhaustive()
    }
}

/// Resolve both secrets: environment first, then `<data>/secrets/*`, else generate and store.
pub fn resolve(auth: &AuthConfig, data_dir: &Path, env: &EnvLookup) -> Result<Secrets, SecretsError> {
    let dir = data_dir.join(SECRETS_DIR);

    let (jwt_secret, jwt_source) = match env(&auth.jwt_secret_env) {
        Some(value) => {
            if value.chars().count() < MIN_JWT_SECRET_LEN {
                return Err(SecretsError::JwtTooShort);
            }
            (value, SecretSource::Env(auth.jwt_secret_env.clone()))
        }
        None => {
            let (value, source) = stored_or_generated(&dir, JWT_FILE)?;
            if value.chars().count() < MIN_JWT_SECRET_LEN {
                return Err(SecretsError::StoredJwtTooShort { path: dir.join(JWT_FILE) });
            }
            (value, source)
        }
    };

    let from_env = admin_secret_from_env(auth, env);
    let (admin_secret, admin_source) = match from_env {
        Some(found) => found,
        None => stored_or_generated(&dir, ADMIN_FILE)?,
    };

    Ok(Secrets { jwt_secret, jwt_source, admin_secret, admin_source })
}

/// The variables the admin secret is read from, in order: `ADMIN_API_KEY`, then
/// `[auth].api_key_env`.
pub fn admin_secret_vars(auth: &AuthConfig) -> [&str; 2] {
    ["ADMIN_API_KEY", auth.api_key_env.as_str()]
}

fn admin_secret_from_env(auth: &AuthConfig, env: &EnvLookup) -> Option<(String, SecretSource)> {
    admin_secret_vars(auth)
        .into_iter()
        .find_map(|name| env(name).filter(|v| !v.is_empty()).map(|v| (v, SecretSource::Env(name.to_string()))))
}

/// The admin secret a command-line tool should present to the running server, found the way
/// the server finds it (`ADMIN_API_KEY`, then `[auth].api_key_env`, then `data/secrets`) but
/// never generated: a tool that made up a new secret would only be refused. `None` when there
/// is none to find.
pub fn find_admin_secret(auth: &AuthConfig, data_dir: &Path, env: &EnvLookup) -> Option<(String, SecretSource)> {
    let from_env = admin_secret_from_env(auth, env);
    from_env.or_else(|| {
        let path = data_dir.join(SECRETS_DIR).join(ADMIN_FILE);
        let value = std::fs::read_to_string(&path).ok()?.trim().to_string();
        (!value.is_empty()).then_some((value, SecretSource::File(path)))
    })
}

fn stored_or_generated(dir: &Path, file: &str) -> Result<(String, SecretSource), SecretsError> {
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(content) => {
            let value = content.trim().to_string();
            if value.is_empty() {
                return Err(SecretsError::StoredEmpty { path });
            }
            Ok((value, SecretSource::File(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let value = generate();
            write_private(dir, &path, &value)?;
            Ok((value, SecretSource::Generated(path)))
        }
        Err(source) => Err(SecretsError::Io { path, source }),
    }
}

/// 32 random bytes from the OS generator, hex encoded (64 characters).
fn generate() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Write `value` to a new file readable only by the owner, and fsync it: a secret that was
/// printed must survive a crash right after start.
fn write_private(dir: &Path, path: &Path, value: &str) -> Result<(), SecretsError> {
    let io = |source| SecretsError::Io { path: path.to_path_buf(), source };
    create_private_dir(dir).map_err(|source| SecretsError::Io { path: dir.to_path_buf(), source })?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(value.as_bytes()).map_err(io)?;
    file.write_all(b"\n").map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> Box<EnvLookup> {
        Box::new(move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn generates_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let auth = AuthConfig::default();
        let first = resolve(&auth, dir.path(), &*env_of(&[])).unwrap();
        assert!(matches!(first.admin_source, SecretSource::Generated(_)));
        assert!(matches!(first.jwt_source, SecretSource::Generated(_)));
        assert_eq!(first.jwt_secret.len(), 64);
        let second = resolve(&auth, dir.path(), &*env_of(&[])).unwrap();
        assert_eq!(second.admin_secret, first.admin_secret);
        assert_eq!(second.jwt_secret, first.jwt_secret);
        assert!(matches!(second.admin_source, SecretSource::File(_)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("secrets/admin_secret")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn env_wins_and_short_jwt_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let auth = AuthConfig::default();
        let s = resolve(
            &auth,
            dir.path(),
            &*env_of(&[
                ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
                ("API_KEY", "fallback"),
                ("ADMIN_API_KEY", "primary"),
            ]),
        )
        .unwrap();
        assert_eq!(s.admin_secret, "primary");
        assert_eq!(s.jwt_source, SecretSource::Env("JWT_SECRET".into()));
        let s = resolve(
            &auth,
            dir.path(),
            &*env_of(&[("JWT_SECRET", "0123456789abcdef0123456789abcdef"), ("API_KEY", "fallback")]),
        )
        .unwrap();
        assert_eq!(s.admin_secret, "fallback");
        let err = resolve(&auth, dir.path(), &*env_of(&[("JWT_SECRET", "short")])).unwrap_err();
        assert_eq!(err.to_string(), "JWT_SECRET must be at least 32 characters");
    }
}
