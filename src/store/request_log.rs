//! The request log: one record per API request (who, what, which upstream, tokens, errors),
//! kept for `[observability].request_log_days` and read newest first.
//!
//! Reads are bounded: a page scans at most [`MAX_SCANNED`] records, so a filter that matches
//! nothing in two weeks of traffic answers quickly with a cursor to continue from rather than
//! holding a read transaction over the whole table.

use std::ops::Bound;

use redb::{ReadTransaction, ReadableTable as _, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{REQUEST_LOG, REQUEST_LOG_BY_TENANT};
use super::{Error, Record, decode, encode};

/// Records a page looks at before answering with what it found and a cursor.
pub const MAX_SCANNED: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLogRecord {
    /// Unix milliseconds when the request arrived.
    pub at_ms: i64,
    /// Orders records of one millisecond (see [`super::tables::REQUEST_LOG`]).
    pub seq: u64,
    pub request_id: String,
    /// The route-table pattern (`/api/conversations/{id}`), or `unmatched`.
    pub route: String,
    pub method: String,
    pub status: u16,
    /// Until the answer was complete (a stream's last event).
    pub duration_us: u64,
    /// `anonymous`, `admin`, `user` or `tenant`.
    pub principal: String,
    pub tenant_id: Option<String>,
    pub user_id: Option<String>,
    pub key_prefix: Option<String>,
    pub agent: Option<String>,
    /// The model that answered (a fallback's name when one did), else the one asked for.
    pub model: Option<String>,
    /// The provider that answered.
    pub provider: Option<String>,
    /// Upstream requests made, retries and fallbacks included.
    pub attempts: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Of `input_tokens`, those read from the provider's prompt cache.
    pub cached_input_tokens: u64,
    /// What its upstream calls cost, in micro-dollars.
    pub cost_micros: u64,
    /// A streamed answer's first token, in microseconds from the request's arrival.
    pub ttft_us: Option<u64>,
    pub error_code: Option<String>,
    pub error: Option<String>,
}

impl Record for RequestLogRecord {
    const TABLE: &'static str = "request_log";
    const VERSION: u8 = 1;
}

pub fn append_all(txn: &WriteTransaction, records: &[RequestLogRecord]) -> Result<(), Error> {
    let mut log = txn.open_table(REQUEST_LOG)?;
    let mut by_tenant = txn.open_table(REQUEST_LOG_BY_TENANT)?;
    for record in records {
        log.insert((record.at_ms, record.seq), encode(record)?.as_slice())?;
        if let Some(tenant) = &record.tenant_id {
            by_tenant.insert((tenant.as_str(), record.at_ms, record.seq), ())?;
        }
    }
    Ok(())
}

/// Which records a page wants. Text filters match case-insensitively.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Unix milliseconds, inclusive.
    pub from_ms: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub to_ms: Option<i64>,
    pub tenant_id: Option<String>,
    /// 2, 4 or 5 for 2xx, 4xx, 5xx.
    pub status_class: Option<u16>,
    pub route: Option<String>,
    pub model: Option<String>,
    /// Found in the error code or message.
    pub error_text: Option<String>,
}

impl Filter {
    fn matches(&self, record: &RequestLogRecord) -> bool {
        let same = |wanted: &Option<String>, actual: &Option<String>| {
            wanted.as_ref().is_none_or(|w| actual.as_ref().is_some_and(|a| a.eq_ignore_ascii_case(w)))
        };
        self.status_class.is_none_or(|class| record.status / 100 == class)
            && self.route.as_ref().is_none_or(|r| r == &record.route)
            && same(&self.model, &record.model)
            && same(&self.tenant_id, &record.tenant_id)
            && self.error_text.as_ref().is_none_or(|text| {
                let text = text.to_lowercase();
                [&record.error_code, &record.error]
                    .iter()
                    .any(|field| field.as_ref().is_some_and(|f| f.to_lowercase().contains(&text)))
            })
    }
}

/// Where a page starts: strictly older than this record.
pub type Cursor = (i64, u64);

pub struct Page {
    pub records: Vec<RequestLogRecord>,
    /// Where the next page starts; `None` when nothing older is left to look at.
    pub next: Option<Cursor>,
}

/// Up to `limit` matching records, newest first, older than `before`.
pub fn page(txn: &ReadTransaction, filter: &Filter, before: Option<Cursor>, limit: usize) -> Result<Page, Error> {
    let limit = limit.max(1);
    let upper = match (before, filter.to_ms) {
        (Some(cursor), Some(to)) if (to, 0) <= cursor => Bound::Excluded((to, 0)),
        (Some(cursor), _) => Bound::Excluded(cursor),
        (None, Some(to)) => Bound::Excluded((to, 0)),
        (None, None) => Bound::Unbounded,
    };
    let lower = filter.from_ms.map_or(Bound::Unbounded, |from| Bound::Included((from, 0)));
    let log = txn.open_table(REQUEST_LOG)?;
    let mut records = Vec::with_capacity(limit.min(256));
    let mut scanned = 0;
    let mut last: Option<Cursor> = None;
    let mut visit = |key: Cursor, records: &mut Vec<RequestLogRecord>| -> Result<bool, Error> {
        scanned += 1;
        last = Some(key);
        if let Some(value) = log.get(key)? {
            let record: RequestLogRecord = decode(value.value())?;
            if filter.matches(&record) {
                records.push(record);
            }
        }
        Ok(records.len() < limit && scanned < MAX_SCANNED)
    };
    let mut exhausted = true;
    if let Some(tenant) = &filter.tenant_id {
        let by_tenant = txn.open_table(REQUEST_LOG_BY_TENANT)?;
        let bound = |b: Bound<Cursor>, edge: u64| match b {
            Bound::Included((at, seq)) => Bound::Included((tenant.as_str(), at, seq)),
            Bound::Excluded((at, seq)) => Bound::Excluded((tenant.as_str(), at, seq)),
            Bound::Unbounded => Bound::Included((tenant.as_str(), if edge == 0 { i64::MIN } else { i64::MAX }, edge)),
        };
        for entry in by_tenant.range((bound(lower, 0), bound(upper, u64::MAX)))?.rev() {
            let (key, _) = entry?;
            let (_, at, seq) = key.value();
            if !visit((at, seq), &mut records)? {
                exhausted = false;
                break;
            }
        }
    } else {
        for entry in log.range::<Cursor>((lower, upper))?.rev() {
            let (key, _) = entry?;
            if !visit(key.value(), &mut records)? {
                exhausted = false;
                break;
            }
        }
    }
    Ok(Page { records, next: if exhausted { None } else { last } })
}

/// Delete up to `max` records older than `cutoff_ms` (oldest first) with their index entries;
/// returns how many went. Bounded, so one pass never holds the writer for long.
pub fn prune(txn: &WriteTransaction, cutoff_ms: i64, max: usize) -> Result<usize, Error> {
    let mut log = txn.open_table(REQUEST_LOG)?;
    let mut by_tenant = txn.open_table(REQUEST_LOG_BY_TENANT)?;
    let mut doomed = Vec::new();
    for entry in log.range::<Cursor>(..(cutoff_ms, 0))?.take(max) {
        let (key, value) = entry?;
        let tenant = decode::<RequestLogRecord>(value.value()).ok().and_then(|r| r.tenant_id);
        doomed.push((key.value(), tenant));
    }
    for ((at, seq), tenant) in &doomed {
        log.remove((*at, *seq))?;
        if let Some(tenant) = tenant {
            by_tenant.remove((tenant.as_str(), *at, *seq))?;
        }
    }
    Ok(doomed.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::{DB_FILE, MigrationPolicy, Store};

    fn record(at_ms: i64, seq: u64, tenant: Option<&str>, status: u16, error: Option<&str>) -> RequestLogRecord {
        RequestLogRecord {
            at_ms,
            seq,
            request_id: format!("r{seq}"),
            route: if status == 200 { "/v1/chat".into() } else { "/v1/usage".into() },
            method: "POST".into(),
            status,
            duration_us: 1,
            principal: "tenant".into(),
            tenant_id: tenant.map(str::to_string),
            user_id: None,
            key_prefix: None,
            agent: None,
            model: Some("fast".into()),
            provider: None,
            attempts: 1,
            input_tokens: 0,
            output_tokens: 0,
            cached_input_tokens: 0,
            cost_micros: 0,
            ttft_us: None,
            error_code: error.map(|_| "UPSTREAM_ERROR".into()),
            error: error.map(str::to_string),
        }
    }

    fn seeded() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(DB_FILE), MigrationPolicy::Apply).unwrap();
        let records: Vec<RequestLogRecord> = (0..10)
            .map(|i| {
                let tenant = if i % 2 == 0 { "a" } else { "b" };
                let (status, error) = if i % 5 == 4 { (502, Some("Provider 'x' Timed Out")) } else { (200, None) };
                record(1_000 + i as i64 * 10, i, Some(tenant), status, error)
            })
            .collect();
        store.write_blocking(move |txn| append_all(txn, &records)).unwrap();
        (dir, store)
    }

    fn seqs(page: &Page) -> Vec<u64> {
        page.records.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn pages_walk_newest_first_without_gaps_or_repeats_with_and_without_the_tenant_index() {
        let (_dir, store) = seeded();
        for (tenant, expected) in [(None, (0..10).rev().collect::<Vec<u64>>()), (Some("a"), vec![8, 6, 4, 2, 0])] {
            let filter = Filter { tenant_id: tenant.map(str::to_string), ..Filter::default() };
            let mut seen = Vec::new();
            let mut cursor = None;
            loop {
                let found = store.read_now(|txn| page(txn, &filter, cursor, 3)).unwrap();
                seen.extend(seqs(&found));
                match found.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            assert_eq!(seen, expected, "tenant {tenant:?}");
        }
    }

    #[test]
    fn filters_combine_time_range_status_class_route_and_error_text() {
        let (_dir, store) = seeded();
        let run = |filter: Filter| seqs(&store.read_now(|txn| page(txn, &filter, None, 50)).unwrap());
        assert_eq!(run(Filter { from_ms: Some(1_020), to_ms: Some(1_050), ..Filter::default() }), [4, 3, 2]);
        assert_eq!(run(Filter { status_class: Some(5), ..Filter::default() }), [9, 4]);
        assert_eq!(run(Filter { route: Some("/v1/usage".into()), ..Filter::default() }), [9, 4]);
        assert_eq!(run(Filter { error_text: Some("timed out".into()), ..Filter::default() }), [9, 4]);
        assert_eq!(
            run(Filter { error_text: Some("timed out".into()), tenant_id: Some("a".into()), ..Filter::default() }),
            [4]
        );
        assert_eq!(run(Filter { model: Some("FAST".into()), to_ms: Some(1_010), ..Filter::default() }), [0]);
    }

    #[test]
    fn pruning_deletes_only_what_is_older_than_the_cutoff_in_bounded_batches_with_its_index_entries() {
        let (_dir, store) = seeded();
        assert_eq!(store.write_blocking(|txn| prune(txn, 1_045, 3)).unwrap(), 3);
        assert_eq!(store.write_blocking(|txn| prune(txn, 1_045, 3)).unwrap(), 2);
        assert_eq!(store.write_blocking(|txn| prune(txn, 1_045, 3)).unwrap(), 0);
        let all = store.read_now(|txn| page(txn, &Filter::default(), None, 50)).unwrap();
        assert_eq!(seqs(&all), [9, 8, 7, 6, 5]);
        let indexed = store.read_now(|txn| Ok(txn.open_table(REQUEST_LOG_BY_TENANT)?.iter()?.count())).unwrap();
        assert_eq!(indexed, 5, "the pruned records' index entries went with them");
    }
}
