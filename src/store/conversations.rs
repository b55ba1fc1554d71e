//! Conversations and their messages, owned by a user (`user:<id>`) or a tenant (`tenant:<id>`).
//! Another owner's conversation reads as not found.

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{CONVERSATIONS, MESSAGES, OWNER_CONVERSATIONS};
use super::{Error, Record, decode, encode};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRecord {
    pub id: String,
    pub owner: String,
    pub title: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub message_count: u32,
}

impl Record for ConversationRecord {
    const TABLE: &'static str = "conversations";
    const VERSION: u8 = 1;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: String,
    /// `user`, `assistant` or `system`.
    pub role: String,
    pub content: String,
    pub created_at: i64,
}

impl Record for MessageRecord {
    const TABLE: &'static str = "messages";
    const VERSION: u8 = 1;
}

fn not_found() -> Error {
    Error::NotFound("Conversation not found".into())
}

/// The conversation if it exists and belongs to `owner`.
pub fn get(txn: &ReadTransaction, owner: &str, id: &str) -> Result<Option<ConversationRecord>, Error> {
    let found: Option<ConversationRecord> =
        txn.open_table(CONVERSATIONS)?.get(id)?.map(|v| decode(v.value())).transpose()?;
    Ok(found.filter(|c| c.owner == owner))
}

/// Whether `id` is free or owned by `owner` (a new conversation may take an unknown id).
pub fn usable_by(txn: &ReadTransaction, owner: &str, id: &str) -> Result<bool, Error> {
    let found: Option<ConversationRecord> =
        txn.open_table(CONVERSATIONS)?.get(id)?.map(|v| decode(v.value())).transpose()?;
    Ok(found.is_none_or(|c| c.owner == owner))
}

/// The last `limit` messages, oldest first.
pub fn recent_messages(txn: &ReadTransaction, id: &str, limit: usize) -> Result<Vec<MessageRecord>, Error> {
    let table = txn.open_table(MESSAGES)?;
    let mut out = Vec::new();
    for entry in table.range((id, 0)..=(id, u32::MAX))?.rev().take(limit) {
        let (_, value) = entry?;
        out.push(decode(value.value())?);
    }
    out.reverse();
    Ok(out)
}

/// Messages to append to one conversation (created for `owner` if the id is new).
pub struct Exchange<'a> {
    pub owner: &'a str,
    pub id: &'a str,
    pub messages: &'a [MessageRecord],
    pub now: i64,
}

/// Append `messages` to conversation `id`, creating it for `owner` if it does not exist.
/// Another owner's conversation is [`Error::NotFound`].
pub fn append(
    txn: &WriteTransaction,
    owner: &str,
    id: &str,
    messages: &[MessageRecord],
    now: i64,
) -> Result<(), Error> {
    let refused = append_all(txn, &[Exchange { owner, id, messages, now }])?;
    if refused.is_empty() { Ok(()) } else { Err(not_found()) }
}

/// [`append`] for a batch, with each table opened once. Returns the ids of the exchanges that
/// were refused because the conversation belongs to another owner (the others are written).
pub fn append_all<'a>(txn: &WriteTransaction, exchanges: &[Exchange<'a>]) -> Result<Vec<&'a str>, Error> {
    let mut refused = Vec::new();
    if exchanges.is_empty() {
        return Ok(refused);
    }
    let mut conversations = txn.open_table(CONVERSATIONS)?;
    let mut owners = txn.open_table(OWNER_CONVERSATIONS)?;
    let mut table = txn.open_table(MESSAGES)?;
    for &Exchange { owner, id, messages, now } in exchanges {
        let existing: Option<ConversationRecord> = conversations.get(id)?.map(|v| decode(v.value())).transpose()?;
        let mut conversation = match existing {
            Some(c) if c.owner != owner => {
                refused.push(id);
                continue;
            }
            Some(c) => c,
            None => {
                owners.insert((owner, id), ())?;
                ConversationRecord {
                    id: id.to_string(),
                    owner: owner.to_string(),
                    title: None,
                    created_at: now,
                    updated_at: now,
                    message_count: 0,
                }
            }
        };
        for message in messages {
            table.insert((id, conversation.message_count), encode(message)?.as_slice())?;
            conversation.message_count += 1;
        }
        conversation.updated_at = now;
        conversations.insert(id, encode(&conversation)?.as_slice())?;
    }
    Ok(refused)
}

/// An owner's conversations, most recently updated first.
pub fn list(txn: &ReadTransaction, owner: &str) -> Result<Vec<ConversationRecord>, Error> {
    let index = txn.open_table(OWNER_CONVERSATIONS)?;
    let conversations = txn.open_table(CONVERSATIONS)?;
    let mut out = Vec::new();
    for entry in index.range((owner, "")..)? {
        let (key, _) = entry?;
        let (key_owner, id) = key.value();
        if key_owner != owner {
            break;
        }
        if let Some(value) = conversations.get(id)? {
            out.push(decode::<ConversationRecord>(value.value())?);
        }
    }
    out.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| b.id.cmp(&a.id)));
    Ok(out)
}

/// All messages, oldest first.
pub fn messages(txn: &ReadTransaction, id: &str) -> Result<Vec<MessageRecord>, Error> {
    recent_messages(txn, id, usize::MAX)
}

pub fn rename(
    txn: &WriteTransaction,
    owner: &str,
    id: &str,
    title: Option<String>,
    now: i64,
) -> Result<ConversationRecord, Error> {
    let mut conversations = txn.open_table(CONVERSATIONS)?;
    let mut conversation: ConversationRecord =
        match conversations.get(id)?.map(|v| decode::<ConversationRecord>(v.value())).transpose()? {
            Some(c) if c.owner == owner => c,
            _ => return Err(not_found()),
        };
    conversation.title = title;
    conversation.updated_at = now;
    conversations.insert(id, encode(&conversation)?.as_slice())?;
    Ok(conversation)
}

/// Delete the conversation and every message.
pub fn delete(txn: &WriteTransaction, owner: &str, id: &str) -> Result<(), Error> {
    let mut conversations = txn.open_table(CONVERSATIONS)?;
    let conversation: ConversationRecord =
        match conversations.get(id)?.map(|v| decode::<ConversationRecord>(v.value())).transpose()? {
            Some(c) if c.owner == owner => c,
            _ => return Err(not_found()),
        };
    conversations.remove(id)?;
    txn.open_table(OWNER_CONVERSATIONS)?.remove((owner, id))?;
    let mut messages = txn.open_table(MESSAGES)?;
    for seq in 0..conversation.message_count {
        messages.remove((id, seq))?;
    }
    Ok(())
}

/// Store an imported conversation with its messages (already in order), keeping every id.
pub fn import(
    txn: &WriteTransaction,
    conversation: &ConversationRecord,
    messages: &[MessageRecord],
) -> Result<(), Error> {
    txn.open_table(OWNER_CONVERSATIONS)?.insert((conversation.owner.as_str(), conversation.id.as_str()), ())?;
    let mut table = txn.open_table(MESSAGES)?;
    for (i, message) in messages.iter().enumerate() {
        table.insert((conversation.id.as_str(), i as u32), encode(message)?.as_slice())?;
    }
    let record = ConversationRecord { message_count: messages.len() as u32, ..conversation.clone() };
    txn.open_table(CONVERSATIONS)?.insert(conversation.id.as_str(), encode(&record)?.as_slice())?;
    Ok(())
}

/// Every conversation (export).
pub fn all(txn: &ReadTransaction) -> Result<Vec<ConversationRecord>, Error> {
    super::all_values(txn, CONVERSATIONS)
}
