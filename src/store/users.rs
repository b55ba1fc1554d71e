//! Users and their refresh-token sessions (API.md §3.3, §3.4).

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{SESSION_IDS, SESSIONS, USER_BY_EMAIL, USERS};
use super::{Error, Record, decode, encode};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    /// Verbatim, matched case-sensitively.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Record for UserRecord {
    const TABLE: &'static str = "users";
    const VERSION: u8 = 1;
}

/// A live refresh token, stored by the SHA-256 of the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    pub user_id: String,
    /// The refresh token's own `exp` (imported rows may hold a shorter value; the JWT's `exp`
    /// is what counts).
    pub expires_at: i64,
    pub created_at: i64,
}

impl Record for SessionRecord {
    const TABLE: &'static str = "sessions";
    const VERSION: u8 = 1;
}

/// Insert a user, refusing a taken email with 409 `User already exists`.
pub fn insert(txn: &WriteTransaction, user: &UserRecord) -> Result<(), Error> {
    let mut by_email = txn.open_table(USER_BY_EMAIL)?;
    if by_email.get(user.email.as_str())?.is_some() {
        return Err(Error::Conflict("User already exists".into()));
    }
    by_email.insert(user.email.as_str(), user.id.as_str())?;
    txn.open_table(USERS)?.insert(user.id.as_str(), encode(user)?.as_slice())?;
    Ok(())
}

pub fn get(txn: &ReadTransaction, id: &str) -> Result<Option<UserRecord>, Error> {
    txn.open_table(USERS)?.get(id)?.map(|v| decode(v.value())).transpose()
}

pub fn by_email(txn: &ReadTransaction, email: &str) -> Result<Option<UserRecord>, Error> {
    let Some(id) = txn.open_table(USER_BY_EMAIL)?.get(email)?.map(|v| v.value().to_string()) else {
        return Ok(None);
    };
    get(txn, &id)
}

/// Store a session under its refresh token's hash, and its id for the access-token check.
pub fn insert_session(txn: &WriteTransaction, token_hash: &str, session: &SessionRecord) -> Result<(), Error> {
    txn.open_table(SESSIONS)?.insert(token_hash, encode(session)?.as_slice())?;
    txn.open_table(SESSION_IDS)?.insert(session.id.as_str(), token_hash)?;
    Ok(())
}

/// The live session with this id (an access token's `sid`), if it was not logged out.
pub fn session_by_id(txn: &ReadTransaction, session_id: &str) -> Result<Option<SessionRecord>, Error> {
    let Some(hash) = txn.open_table(SESSION_IDS)?.get(session_id)?.map(|v| v.value().to_string()) else {
        return Ok(None);
    };
    session(txn, &hash)
}

pub fn session(txn: &ReadTransaction, token_hash: &str) -> Result<Option<SessionRecord>, Error> {
    txn.open_table(SESSIONS)?.get(token_hash)?.map(|v| decode(v.value())).transpose()
}

/// Remove a session and its id; the removed session, if there was one (logout is idempotent).
pub fn delete_session(txn: &WriteTransaction, token_hash: &str) -> Result<Option<SessionRecord>, Error> {
    let removed: Option<SessionRecord> =
        txn.open_table(SESSIONS)?.remove(token_hash)?.map(|v| decode(v.value())).transpose()?;
    if let Some(session) = &removed {
        txn.open_table(SESSION_IDS)?.remove(session.id.as_str())?;
    }
    Ok(removed)
}

/// Drop sessions whose refresh token expired before `now`; returns how many.
pub fn purge_expired_sessions(txn: &WriteTransaction, now: i64, grace_secs: i64) -> Result<usize, Error> {
    let mut table = txn.open_table(SESSIONS)?;
    let expired: Vec<(String, String)> = table
        .iter()?
        .filter_map(|entry| {
            let (key, value) = entry.ok()?;
            let session: SessionRecord = decode(value.value()).ok()?;
            (session.expires_at + grace_secs < now).then(|| (key.value().to_string(), session.id))
        })
        .collect();
    let mut ids = txn.open_table(SESSION_IDS)?;
    for (key, id) in &expired {
        table.remove(key.as_str())?;
        ids.remove(id.as_str())?;
    }
    Ok(expired.len())
}

/// Every record (export).
pub fn all(txn: &ReadTransaction) -> Result<Vec<UserRecord>, Error> {
    super::all_values(txn, USERS)
}

/// Every session with its token hash (export).
pub fn all_sessions(txn: &ReadTransaction) -> Result<Vec<(String, SessionRecord)>, Error> {
    let mut out = Vec::new();
    for entry in txn.open_table(SESSIONS)?.iter()? {
        let (key, value) = entry?;
        out.push((key.value().to_string(), decode(value.value())?));
    }
    Ok(out)
}
