//! Plain-format `pg_dump` reader (a streaming iterator of table rows) and the SQL writers whose
//! output `psql -v ON_ERROR_STOP=1 -f` loads; used by `ares import-postgres` / `ares export-postgres`.
//!
//! The reader is a small psql: it splits the script into statements the way psql does (quotes,
//! dollar quotes, nested comments, `BEGIN ATOMIC` bodies, `\` meta-command lines), skips everything
//! except `CREATE TABLE` (remembered for column order), `INSERT`, `COPY ... FROM stdin` and the two
//! `SET`s that change how the rest must be read, and hands out values in PostgreSQL's text output
//! form. Memory is bounded by the largest single statement or COPY line, never by the dump size.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, Write};
use std::sync::Arc;

/// One data row of a table, values in PostgreSQL *text output* form: booleans `t`/`f` (INSERT
/// `true`/`false` become `t`/`f`), numbers as written, strings unescaped, json/jsonb as their text,
/// timestamps as written in the literal, bytea as written (`\x0102` hex form), NULL as `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Table name without its schema (`tenants`), identifier quoting removed.
    pub table: String,
    /// 1-based line of the row: its COPY data line, or the line of the `(` opening its VALUES
    /// tuple (for pg_dump output that is the INSERT statement's first line).
    pub line: usize,
    /// Column names, shared by the rows of one COPY block or table. An INSERT value written as
    /// `DEFAULT` (pg_dump does this for generated columns) leaves its column out of the row.
    pub columns: Arc<Vec<String>>,
    /// One value per column; `None` is SQL NULL.
    pub values: Vec<Option<String>>,
}

impl Row {
    /// The value of `column`; `None` if it is NULL or the row has no such column.
    pub fn get(&self, column: &str) -> Option<&str> {
        let index = self.columns.iter().position(|c| c == column)?;
        self.values.get(index)?.as_deref()
    }

    /// Whether the row has `column` (NULL or not).
    pub fn has(&self, column: &str) -> bool {
        self.columns.iter().any(|c| c == column)
    }
}

/// A dump that cannot be read: malformed, truncated, or using a construct this reader rejects.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct DumpError {
    /// 1-based line the problem was found at (for an unterminated literal: where it starts).
    pub line: usize,
    pub message: String,
}

impl DumpError {
    fn new(line: usize, message: impl Into<String>) -> Self {
        Self { line, message: message.into() }
    }
}

/// Deepest nesting of parentheses / ARRAY brackets accepted in a VALUES expression; a limit so
/// hostile input cannot overflow the stack of the recursive parser.
const MAX_DEPTH: usize = 64;

/// Streaming reader of a plain-format `pg_dump` script over any [`BufRead`]; yields every table
/// row found in `COPY ... FROM stdin` blocks and `INSERT` statements, in dump order.
///
/// Blocking: each `next()` reads lines from the underlying reader until a row is complete. After
/// an `Err` the iterator is finished (`next()` returns `None`).
pub struct DumpReader<R> {
    reader: R,
    /// Reused raw line buffer.
    buf: Vec<u8>,
    /// Number of lines read so far, i.e. the 1-based number of the current line.
    line: usize,
    bytes: u64,
    mode: Mode,
    stmt: Statement,
    /// `SET standard_conforming_strings`: when off, plain '...' strings take backslash escapes.
    standard_strings: bool,
    tables: BTreeMap<String, Arc<Vec<String>>>,
    /// Rows decoded but not yet handed out (a multi-row INSERT yields several at once).
    pending: VecDeque<Row>,
    /// Column list of the last `INSERT ... (cols)`, reused so --column-inserts rows share one Arc.
    last_columns: Option<Arc<Vec<String>>>,
    finished: bool,
}

enum Mode {
    Sql,
    Copy { table: String, columns: Arc<Vec<String>>, start_line: usize },
}

impl<R: BufRead> DumpReader<R> {
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            buf: Vec::new(),
            line: 0,
            bytes: 0,
            mode: Mode::Sql,
            stmt: Statement::default(),
            standard_strings: true,
            tables: BTreeMap::new(),
            pending: VecDeque::new(),
            last_columns: None,
            finished: false,
        }
    }

    /// Bytes consumed so far (for a progress bar).
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Current 1-based line number (the last line read; 0 before the first).
    pub fn line(&self) -> usize {
        self.line
    }

    /// Tables whose `CREATE TABLE` was seen so far, with their columns in table order (for
    /// reporting); keyed by name without schema.
    pub fn tables(&self) -> &BTreeMap<String, Arc<Vec<String>>> {
        &self.tables
    }

    /// Reads and processes one line; `Ok(false)` at a clean end of input.
    fn advance(&mut self) -> Result<bool, DumpError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let read = buf_read(&mut self.reader, &mut buf, self.line);
        let result = self.advance_with(read);
        // Keep the allocation unless one monster line blew it up.
        if buf.capacity() <= 1 << 20 {
            self.buf = buf;
        }
        result
    }

    fn advance_with(&mut self, read: Result<Option<&[u8]>, DumpError>) -> Result<bool, DumpError> {
        let Some(raw) = read? else {
            self.end_of_input()?;
            return Ok(false);
        };
        self.bytes += raw.len() as u64;
        self.line += 1;
        if matches!(self.mode, Mode::Copy { .. }) {
            self.copy_line(raw)?;
        } else {
            let line = std::str::from_utf8(raw).map_err(|e| {
                DumpError::new(
                    self.line,
                    format!(
                        "invalid UTF-8 at byte {} of the line: only UTF-8 dumps are supported",
                        e.valid_up_to() + 1
                    ),
                )
            })?;
            self.sql_line(line)?;
        }
        Ok(true)
    }

    fn end_of_input(&self) -> Result<(), DumpError> {
        if let Mode::Copy { table, start_line, .. } = &self.mode {
            return Err(DumpError::new(
                self.line,
                format!(
                    "end of input inside the COPY data of {table} (COPY at line {start_line}): the terminating \
                     `\\.` line is missing (truncated dump?)"
                ),
            ));
        }
        if !self.stmt.active {
            return Ok(());
        }
        let (line, what) = match &self.stmt.lex {
            Lex::Quote { start, .. } => (*start, "unterminated quoted string".to_owned()),
            Lex::Ident { start } => (*start, "unterminated quoted identifier".to_owned()),
            Lex::Dollar { delim, start } => (*start, format!("unterminated dollar-quoted string {delim}")),
            Lex::Comment { start, .. } => (*start, "unterminated /* comment".to_owned()),
            Lex::Code if self.stmt.has_code => {
                (self.stmt.start_line, "statement not terminated by `;` (truncated dump?)".to_owned())
            }
            Lex::Code => return Ok(()),
        };
        Err(DumpError::new(line, format!("{what} at end of input")))
    }

    fn copy_line(&mut self, raw: &[u8]) -> Result<(), DumpError> {
        let data = raw.strip_suffix(b"\n").unwrap_or(raw);
        // A dump that went through a CRLF conversion; pg_dump itself writes a data CR as `\r`.
        let data = data.strip_suffix(b"\r").unwrap_or(data);
        let Mode::Copy { table, columns, .. } = &self.mode else {
            return Ok(());
        };
        if data == b"\\." {
            self.mode = Mode::Sql;
            return Ok(());
        }
        let values = decode_copy_row(data, columns)
            .map_err(|message| DumpError::new(self.line, format!("COPY data of {table}: {message}")))?;
        self.pending.push_back(Row { table: table.clone(), line: self.line, columns: Arc::clone(columns), values });
        Ok(())
    }

    /// Feeds one line of SQL to the statement splitter, finishing every statement it ends.
    fn sql_line(&mut self, line: &str) -> Result<(), DumpError> {
        let mut pos = 0;
        while pos < line.len() {
            if !self.stmt.active {
                let rest = line[pos..].trim_start_matches(is_space);
                // Blank, a comment, or a psql meta-command (`\restrict`, `\connect`, ...).
                if rest.is_empty() || rest.starts_with("--") || rest.starts_with('\\') {
                    return Ok(());
                }
                pos = line.len() - rest.len();
                self.stmt.begin(self.line);
            }
            let end = self.stmt.scan(line, pos, self.line, self.standard_strings);
            if self.stmt.kind != Kind::Other {
                self.stmt.text.push_str(&line[pos..end.unwrap_or(line.len())]);
            }
            let Some(end) = end else {
                return Ok(());
            };
            self.finish_statement()?;
            pos = end;
            if matches!(self.mode, Mode::Copy { .. }) {
                if !line[pos..].trim_matches(is_space).is_empty() {
                    return Err(DumpError::new(self.line, "unexpected text after `COPY ... FROM stdin;` on its line"));
                }
                return Ok(());
            }
        }
        Ok(())
    }

    fn finish_statement(&mut self) -> Result<(), DumpError> {
        self.stmt.active = false;
        let text = std::mem::take(&mut self.stmt.text);
        let start = self.stmt.start_line;
        let result = match self.stmt.kind {
            Kind::Insert => self.insert(&text, start),
            Kind::Create if is_create_table(&self.stmt.head) => self.create_table(&text, start),
            Kind::Copy => self.copy_header(&text, start),
            Kind::Set => self.set(&text, start),
            Kind::Create | Kind::Other | Kind::Undecided => Ok(()),
        };
        if text.capacity() <= 1 << 20 {
            self.stmt.text = text;
            self.stmt.text.clear();
        }
        result
    }

    fn insert(&mut self, text: &str, start_line: usize) -> Result<(), DumpError> {
        let toks = tokenize_at(text, start_line, self.standard_strings)?;
        let mut p = Parser::new(&toks, text, start_line);
        p.expect_word("insert")?;
        p.expect_word("into")?;
        let table = p.qualified_name()?;
        let listed = if p.is_punct(b'(') { Some(p.ident_list()?) } else { None };
        if p.eat_word("overriding") {
            if !(p.eat_word("system") || p.eat_word("user")) {
                return Err(p.error("expected SYSTEM or USER after OVERRIDING"));
            }
            p.expect_word("value")?;
        }
        let mut rows = Vec::new();
        if p.is_word("default") {
            let line = p.line();
            p.bump();
            p.expect_word("values")?;
            rows.push(Row { table: table.clone(), line, columns: Arc::new(Vec::new()), values: Vec::new() });
        } else {
            if p.is_word("select") {
                return Err(p.error("INSERT ... SELECT is not supported: only INSERT ... VALUES"));
            }
            let columns = match listed {
                Some(columns) => self.shared_columns(&table, columns),
                None => self.tables.get(&table).cloned().ok_or_else(|| {
                    DumpError::new(
                        start_line,
                        format!(
                            "INSERT INTO {table} has no column list and no CREATE TABLE {table} came before it, \
                             so the column order is unknown (use pg_dump --column-inserts, or include the schema)"
                        ),
                    )
                })?,
            };
            p.expect_word("values")?;
            loop {
                let line = p.line();
                p.expect_punct(b'(')?;
                let mut values = Vec::with_capacity(columns.len());
                if !p.eat_punct(b')') {
                    loop {
                        values.push(p.value(0)?);
                        if p.eat_punct(b',') {
                            continue;
                        }
                        p.expect_punct(b')')?;
                        break;
                    }
                }
                if values.len() != columns.len() {
                    return Err(DumpError::new(
                        line,
                        format!("INSERT INTO {table}: {} values for {} columns", values.len(), columns.len()),
                    ));
                }
                rows.push(build_row(&table, line, &columns, values));
                if !p.eat_punct(b',') {
                    break;
                }
            }
        }
        if p.eat_word("on") {
            p.expect_word("conflict")?;
            p.expect_word("do")?;
            p.expect_word("nothing")?;
        }
        p.expect_end("INSERT")?;
        self.pending.extend(rows);
        Ok(())
    }

    /// `columns` as an Arc, shared with the previous INSERT or the table's own list when equal.
    fn shared_columns(&mut self, table: &str, columns: Vec<String>) -> Arc<Vec<String>> {
        if let Some(last) = &self.last_columns
            && **last == columns
        {
            return Arc::clone(last);
        }
        let shared = match self.tables.get(table) {
            Some(known) if **known == columns => Arc::clone(known),
            _ => Arc::new(columns),
        };
        self.last_columns = Some(Arc::clone(&shared));
        shared
    }

    fn create_table(&mut self, text: &str, start_line: usize) -> Result<(), DumpError> {
        let toks = tokenize_at(text, start_line, self.standard_strings)?;
        let mut p = Parser::new(&toks, text, start_line);
        p.expect_word("create")?;
        while p.eat_word("global")
            || p.eat_word("local")
            || p.eat_word("temporary")
            || p.eat_word("temp")
            || p.eat_word("unlogged")
            || p.eat_word("foreign")
        {}
        if !p.eat_word("table") {
            return Ok(());
        }
        if p.eat_word("if") {
            p.expect_word("not")?;
            p.expect_word("exists")?;
        }
        let name = p.qualified_name()?;
        if p.eat_word("partition") {
            p.expect_word("of")?;
            let parent = p.qualified_name()?;
            if let Some(columns) = self.tables.get(&parent).cloned() {
                self.tables.insert(name, columns);
            }
            return Ok(());
        }
        // `OF type` and `AS query` tables: their columns are not spelled out here.
        if !p.eat_punct(b'(') {
            return Ok(());
        }
        let mut local = Vec::new();
        if !p.eat_punct(b')') {
            loop {
                let constraint = match p.peek() {
                    Some(T::Word(w)) => {
                        matches!(
                            w.as_str(),
                            "constraint" | "primary" | "unique" | "check" | "foreign" | "exclude" | "like"
                        )
                    }
                    _ => false,
                };
                if !constraint {
                    local.push(p.ident()?);
                }
                p.skip_element()?;
                if p.eat_punct(b',') {
                    continue;
                }
                p.expect_punct(b')')?;
                break;
            }
        }
        let mut columns: Vec<String> = Vec::new();
        if p.eat_word("inherits") {
            p.expect_punct(b'(')?;
            loop {
                let parent = p.qualified_name()?;
                for column in self.tables.get(&parent).map(|c| c.as_slice()).unwrap_or_default() {
                    if !columns.contains(column) {
                        columns.push(column.clone());
                    }
                }
                if !p.eat_punct(b',') {
                    break;
                }
            }
            p.expect_punct(b')')?;
        }
        for column in local {
            if !columns.contains(&column) {
                columns.push(column);
            }
        }
        self.tables.insert(name, Arc::new(columns));
        Ok(())
    }

    fn copy_header(&mut self, text: &str, start_line: usize) -> Result<(), DumpError> {
        let toks = tokenize_at(text, start_line, self.standard_strings)?;
        let mut p = Parser::new(&toks, text, start_line);
        p.expect_word("copy")?;
        if p.is_punct(b'(') {
            return Err(p.error("COPY (query) is not supported"));
        }
        let table = p.qualified_name()?;
        let listed = if p.is_punct(b'(') { Some(p.ident_list()?) } else { None };
        if p.eat_word("to") {
            // Output, not input: psql would print it; no data follows in the script.
            return Ok(());
        }
        p.expect_word("from")?;
        if !p.eat_word("stdin") {
            return Err(p.error(
                "only `COPY ... FROM stdin` is supported (the data must be in the dump, not in a server-side file \
                 or program)",
            ));
        }
        p.eat_punct(b';');
        if p.peek().is_some() {
            return Err(p.error(
                "COPY options are not supported: expected `COPY table (columns) FROM stdin;` as pg_dump writes it",
            ));
        }
        let columns = match listed {
            Some(columns) => self.shared_columns(&table, columns),
            None => self.tables.get(&table).cloned().ok_or_else(|| {
                DumpError::new(
                    start_line,
                    format!("COPY {table} has no column list and no CREATE TABLE {table} came before it"),
                )
            })?,
        };
        self.mode = Mode::Copy { table, columns, start_line };
        Ok(())
    }

    fn set(&mut self, text: &str, start_line: usize) -> Result<(), DumpError> {
        let toks = tokenize_at(text, start_line, self.standard_strings)?;
        let mut p = Parser::new(&toks, text, start_line);
        p.expect_word("set")?;
        if !p.eat_word("session") {
            p.eat_word("local");
        }
        let Some(T::Word(name)) = p.bump() else {
            return Ok(());
        };
        if !(p.eat_punct(b'=') || p.eat_word("to")) {
            return Ok(());
        }
        let value = match p.bump() {
            Some(T::Word(w)) => w.clone(),
            Some(T::Str(s)) => s.to_ascii_lowercase(),
            Some(T::Num(n)) => n.clone(),
            _ => return Ok(()),
        };
        match name.as_str() {
            "standard_conforming_strings" => match value.as_str() {
                "on" | "true" | "yes" | "1" | "default" => self.standard_strings = true,
                "off" | "false" | "no" | "0" => self.standard_strings = false,
                _ => return Err(DumpError::new(start_line, format!("bad standard_conforming_strings value {value}"))),
            },
            "client_encoding" => {
                let plain: String = value.chars().filter(char::is_ascii_alphanumeric).collect();
                if !matches!(plain.as_str(), "utf8" | "unicode" | "sqlascii") {
                    return Err(DumpError::new(
                        start_line,
                        format!(
                            "the dump is in client_encoding {value}; only UTF8 dumps are supported (re-run pg_dump \
                             with --encoding=UTF8)"
                        ),
                    ));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl<R: BufRead> Iterator for DumpReader<R> {
    type Item = Result<Row, DumpError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.pending.pop_front() {
                return Some(Ok(row));
            }
            if self.finished {
                return None;
            }
            match self.advance() {
                Ok(true) => {}
                Ok(false) => self.finished = true,
                Err(e) => {
                    self.finished = true;
                    self.pending.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Reads one line (with its `\n`) into `buf`; `None` at end of input.
fn buf_read<'b, R: BufRead>(reader: &mut R, buf: &'b mut Vec<u8>, line: usize) -> Result<Option<&'b [u8]>, DumpError> {
    match reader.read_until(b'\n', buf) {
        Ok(0) => Ok(None),
        Ok(_) => Ok(Some(buf.as_slice())),
        Err(e) => Err(DumpError::new(line + 1, format!("read error: {e}"))),
    }
}

fn build_row(table: &str, line: usize, columns: &Arc<Vec<String>>, values: Vec<Value>) -> Row {
    if !values.iter().any(|v| matches!(v, Value::Default)) {
        let values = values.into_iter().map(Value::into_text).collect();
        return Row { table: table.to_owned(), line, columns: Arc::clone(columns), values };
    }
    let mut kept_columns = Vec::with_capacity(columns.len());
    let mut kept_values = Vec::with_capacity(columns.len());
    for (column, value) in columns.iter().zip(values) {
        if !matches!(value, Value::Default) {
            kept_columns.push(column.clone());
            kept_values.push(value.into_text());
        }
    }
    Row { table: table.to_owned(), line, columns: Arc::new(kept_columns), values: kept_values }
}

fn is_create_table(head: &[String]) -> bool {
    head.iter()
        .skip(1)
        .find(|w| !matches!(w.as_str(), "global" | "local" | "temporary" | "temp" | "unlogged" | "foreign"))
        .is_some_and(|w| w == "table")
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn is_space_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_cont(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

fn ident_end(b: &[u8], start: usize) -> usize {
    b[start..].iter().position(|&c| !is_ident_cont(c)).map_or(b.len(), |p| start + p)
}

/// End of a numeric literal starting at `start` (digits, `.`, exponent with sign, `0x..`, `1_000`).
fn number_end(b: &[u8], start: usize) -> usize {
    let radix_prefix =
        b.get(start) == Some(&b'0') && matches!(b.get(start + 1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B'));
    let mut i = start;
    while let Some(&c) = b.get(i) {
        let signed_exponent = (c == b'+' || c == b'-')
            && !radix_prefix
            && i > start
            && matches!(b[i - 1], b'e' | b'E')
            && b.get(i + 1).is_some_and(u8::is_ascii_digit);
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || signed_exponent {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// Length of the `$tag$` opening delimiter at the start of `b`, if it is one.
fn dollar_delim(b: &[u8]) -> Option<usize> {
    if b.first() != Some(&b'$') {
        return None;
    }
    match b.get(1) {
        Some(b'$') => Some(2),
        Some(&c) if is_ident_start(c) => {
            let end = b[1..].iter().position(|&c| !(is_ident_cont(c) && c != b'$')).map(|p| p + 1)?;
            (b.get(end) == Some(&b'$')).then_some(end + 1)
        }
        _ => None,
    }
}

/// Skips a '...' or "..." body from `i` (just after the opening quote); returns the index after
/// the closing quote and whether it was found on this slice.
fn skip_quoted(b: &[u8], mut i: usize, quote: u8, escapes: bool) -> (usize, bool) {
    while let Some(&c) = b.get(i) {
        if c == quote {
            if b.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return (i + 1, true);
        }
        i += if escapes && c == b'\\' { 2 } else { 1 };
    }
    (b.len(), false)
}

/// Skips a (nested) block comment body; returns where scanning stopped and the remaining depth.
fn skip_comment(b: &[u8], mut i: usize, mut depth: usize) -> (usize, usize) {
    while i < b.len() && depth > 0 {
        match (b[i], b.get(i + 1)) {
            (b'/', Some(b'*')) => {
                depth += 1;
                i += 2;
            }
            (b'*', Some(b'/')) => {
                depth -= 1;
                i += 2;
            }
            _ => i += 1,
        }
    }
    (i.min(b.len()), depth)
}

// ---------------------------------------------------------------------------------------------
// Statement splitting (psql's rules), one line at a time
// ---------------------------------------------------------------------------------------------

/// What the statement being scanned is, decided by its first word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Kind {
    #[default]
    Undecided,
    Insert,
    Create,
    Copy,
    Set,
    /// Skipped: its text is not kept.
    Other,
}

/// Lexical state carried from one line to the next inside a statement.
#[derive(Debug, Default)]
enum Lex {
    #[default]
    Code,
    Quote {
        escapes: bool,
        start: usize,
    },
    Ident {
        start: usize,
    },
    Dollar {
        delim: String,
        start: usize,
    },
    Comment {
        depth: usize,
        start: usize,
    },
}

#[derive(Debug, Default)]
struct Statement {
    active: bool,
    start_line: usize,
    /// Something other than whitespace and comments was seen.
    has_code: bool,
    kind: Kind,
    /// Statement text so far, unless `kind` is `Other`.
    text: String,
    /// First few words, lowercased (to tell CREATE TABLE from other CREATEs).
    head: Vec<String>,
    lex: Lex,
    parens: usize,
    /// psql's `BEGIN ATOMIC ... END` tracking: `;` inside such a function body does not end it.
    begin_depth: usize,
    /// psql's first-four-identifiers record (`c`reate, `o`r, `r`eplace, `f`unction, `p`rocedure).
    words: [u8; 4],
    word_count: usize,
}

enum Step {
    Next(usize),
    End(usize),
    LineDone,
}

impl Statement {
    fn begin(&mut self, line: usize) {
        self.active = true;
        self.start_line = line;
        self.has_code = false;
        self.kind = Kind::Undecided;
        self.text.clear();
        self.head.clear();
        self.lex = Lex::Code;
        self.parens = 0;
        self.begin_depth = 0;
        self.words = [0; 4];
        self.word_count = 0;
    }

    /// Scans `line[from..]`; returns the index just past the `;` ending the statement, if any.
    fn scan(&mut self, line: &str, from: usize, line_no: usize, standard_strings: bool) -> Option<usize> {
        let b = line.as_bytes();
        let mut i = from;
        while i < b.len() {
            match &self.lex {
                Lex::Quote { escapes, .. } => {
                    let (end, closed) = skip_quoted(b, i, b'\'', *escapes);
                    i = end;
                    if closed {
                        self.lex = Lex::Code;
                    }
                }
                Lex::Ident { .. } => {
                    let (end, closed) = skip_quoted(b, i, b'"', false);
                    i = end;
                    if closed {
                        self.lex = Lex::Code;
                    }
                }
                Lex::Dollar { delim, .. } => match line.get(i..).and_then(|rest| rest.find(delim.as_str())) {
                    Some(at) => {
                        i += at + delim.len();
                        self.lex = Lex::Code;
                    }
                    None => i = b.len(),
                },
                Lex::Comment { depth, start } => {
                    let start = *start;
                    let (end, depth) = skip_comment(b, i, *depth);
                    i = end;
                    self.lex = if depth == 0 { Lex::Code } else { Lex::Comment { depth, start } };
                }
                Lex::Code => match self.scan_code(line, i, line_no, standard_strings) {
                    Step::Next(next) => i = next,
                    Step::End(end) => return Some(end),
                    Step::LineDone => return None,
                },
            }
        }
        None
    }

    /// One lexical step outside any quote or comment, at byte `i`.
    fn scan_code(&mut self, line: &str, i: usize, line_no: usize, standard_strings: bool) -> Step {
        let b = line.as_bytes();
        let c = b[i];
        let next = b.get(i + 1).copied();
        if is_space_byte(c) {
            return Step::Next(i + 1);
        }
        match (c, next) {
            (b'-', Some(b'-')) => return Step::LineDone,
            (b'/', Some(b'*')) => {
                self.lex = Lex::Comment { depth: 1, start: line_no };
                return Step::Next(i + 2);
            }
            _ => {}
        }
        self.has_code = true;
        match c {
            b'\'' => {
                self.lex = Lex::Quote { escapes: !standard_strings, start: line_no };
                Step::Next(i + 1)
            }
            b'"' => {
                self.lex = Lex::Ident { start: line_no };
                Step::Next(i + 1)
            }
            b'$' => {
                if next.is_some_and(|d| d.is_ascii_digit()) {
                    Step::Next(number_end(b, i + 1))
                } else if let Some(len) = dollar_delim(&b[i..]) {
                    self.lex = Lex::Dollar { delim: line[i..i + len].to_owned(), start: line_no };
                    Step::Next(i + len)
                } else {
                    Step::Next(i + 1)
                }
            }
            b'(' => {
                self.parens += 1;
                Step::Next(i + 1)
            }
            b')' => {
                self.parens = self.parens.saturating_sub(1);
                Step::Next(i + 1)
            }
            b';' if self.parens == 0 && self.begin_depth == 0 => Step::End(i + 1),
            _ if is_ident_start(c) => {
                let end = ident_end(b, i);
                let word = &line[i..end];
                if b.get(end) == Some(&b'\'') && word.eq_ignore_ascii_case("e") {
                    self.lex = Lex::Quote { escapes: true, start: line_no };
                    return Step::Next(end + 1);
                }
                self.note_word(word);
                Step::Next(end)
            }
            _ if c.is_ascii_digit() => Step::Next(number_end(b, i)),
            _ => Step::Next(i + 1),
        }
    }

    fn note_word(&mut self, word: &str) {
        if self.head.len() < 5 {
            self.head.push(word.to_ascii_lowercase());
        }
        if self.word_count == 0 {
            self.kind = match word.to_ascii_lowercase().as_str() {
                "insert" => Kind::Insert,
                "create" => Kind::Create,
                "copy" => Kind::Copy,
                "set" => Kind::Set,
                _ => Kind::Other,
            };
            if self.kind == Kind::Other {
                self.text.clear();
            }
        }
        // psql's heuristic (psqlscan.l): inside CREATE [OR REPLACE] FUNCTION|PROCEDURE, count
        // BEGIN/CASE ... END so the `;`s of a BEGIN ATOMIC body do not end the statement.
        if let Some(slot) = self.words.get_mut(self.word_count) {
            let tracked = ["create", "function", "procedure", "or", "replace"];
            if tracked.iter().any(|t| word.eq_ignore_ascii_case(t)) {
                *slot = word.as_bytes()[0].to_ascii_lowercase();
            }
        }
        self.word_count = self.word_count.saturating_add(1);
        let w = self.words;
        let in_routine = w[0] == b'c'
            && (w[1] == b'f' || w[1] == b'p' || (w[1] == b'o' && w[2] == b'r' && (w[3] == b'f' || w[3] == b'p')));
        if in_routine && self.parens == 0 {
            if word.eq_ignore_ascii_case("begin") {
                self.begin_depth += 1;
            } else if word.eq_ignore_ascii_case("case") {
                if self.begin_depth >= 1 {
                    self.begin_depth += 1;
                }
            } else if word.eq_ignore_ascii_case("end") {
                self.begin_depth = self.begin_depth.saturating_sub(1);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens and the statement parser (INSERT, CREATE TABLE, COPY, SET)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum T {
    /// Unquoted identifier or keyword, ASCII-lowercased as PostgreSQL folds it.
    Word(String),
    /// "Quoted" identifier, exact.
    Quoted(String),
    /// Any string literal, decoded.
    Str(String),
    Num(String),
    /// `::`
    Cast,
    /// `$1`
    Param,
    /// Any other single ASCII character.
    Punct(u8),
}

struct Tok {
    t: T,
    pos: usize,
}

fn tokenize_at(text: &str, start_line: usize, standard_strings: bool) -> Result<Vec<Tok>, DumpError> {
    tokenize(text, standard_strings)
        .map_err(|(pos, message)| DumpError::new(LineMap::new(text, start_line).at(pos), message))
}

fn tokenize(text: &str, standard_strings: bool) -> Result<Vec<Tok>, (usize, String)> {
    let b = text.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let next = b.get(i + 1).copied();
        let start = i;
        let t = match c {
            _ if is_space_byte(c) => {
                i += 1;
                continue;
            }
            b'-' if next == Some(b'-') => {
                i = b[i..].iter().position(|&x| x == b'\n').map_or(b.len(), |p| i + p);
                continue;
            }
            b'/' if next == Some(b'*') => {
                let (end, depth) = skip_comment(b, i + 2, 1);
                if depth > 0 {
                    return Err((start, "unterminated /* comment".to_owned()));
                }
                i = end;
                continue;
            }
            b'\'' => {
                let (s, end) =
                    if standard_strings { standard_string(text, i + 1, b'\'')? } else { escape_string(text, i + 1)? };
                i = end;
                T::Str(s)
            }
            b'"' => {
                let (s, end) = standard_string(text, i + 1, b'"')?;
                if s.is_empty() {
                    return Err((start, "zero-length quoted identifier".to_owned()));
                }
                i = end;
                T::Quoted(s)
            }
            b'$' if next.is_some_and(|d| d.is_ascii_digit()) => {
                i = number_end(b, i + 1);
                T::Param
            }
            b'$' => match dollar_delim(&b[i..]) {
                Some(len) => {
                    let delim = &text[i..i + len];
                    let body = i + len;
                    let Some(at) = text[body..].find(delim) else {
                        return Err((start, format!("unterminated dollar-quoted string {delim}")));
                    };
                    i = body + at + len;
                    T::Str(text[body..body + at].to_owned())
                }
                None => {
                    i += 1;
                    T::Punct(b'$')
                }
            },
            b':' if next == Some(b':') => {
                i += 2;
                T::Cast
            }
            _ if is_ident_start(c) => {
                let end = ident_end(b, i);
                let word = text[i..end].to_ascii_lowercase();
                let quoted = b.get(end) == Some(&b'\'');
                if word == "u" && b.get(end) == Some(&b'&') && matches!(b.get(end + 1), Some(b'\'' | b'"')) {
                    return Err((start, "U&'...' Unicode-escape literals are not supported".to_owned()));
                }
                let (t, next_i) = match word.as_str() {
                    "e" if quoted => {
                        let (s, end) = escape_string(text, end + 1)?;
                        (T::Str(s), end)
                    }
                    "n" if quoted => {
                        let (s, end) = if standard_strings {
                            standard_string(text, end + 1, b'\'')?
                        } else {
                            escape_string(text, end + 1)?
                        };
                        (T::Str(s), end)
                    }
                    "b" | "x" if quoted => {
                        let (digits, after) = standard_string(text, end + 1, b'\'')?;
                        (T::Str(bit_string(&digits, word == "x").map_err(|m| (start, m))?), after)
                    }
                    _ => (T::Word(word), end),
                };
                i = next_i;
                t
            }
            _ if c.is_ascii_digit() || (c == b'.' && next.is_some_and(|d| d.is_ascii_digit())) => {
                i = number_end(b, i);
                T::Num(text[start..i].to_owned())
            }
            _ => {
                i += 1;
                T::Punct(c)
            }
        };
        toks.push(Tok { t, pos: start });
    }
    Ok(toks)
}

/// Body of a '...' string (or "..." identifier) with doubled-quote escaping only; `from` is just
/// after the opening quote. Returns the text and the index after the closing quote.
fn standard_string(text: &str, from: usize, quote: u8) -> Result<(String, usize), (usize, String)> {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut segment = from;
    let mut i = from;
    loop {
        let Some(at) = b.get(i..).and_then(|rest| rest.iter().position(|&c| c == quote)) else {
            let what = if quote == b'"' { "quoted identifier" } else { "quoted string" };
            return Err((from.saturating_sub(1), format!("unterminated {what}")));
        };
        i += at;
        out.push_str(&text[segment..i]);
        if b.get(i + 1) == Some(&quote) {
            out.push(char::from(quote));
            i += 2;
            segment = i;
        } else {
            return Ok((out, i + 1));
        }
    }
}

/// Body of an E'...' string (PostgreSQL escape rules); `from` is just after the opening quote.
fn escape_string(text: &str, from: usize) -> Result<(String, usize), (usize, String)> {
    let b = text.as_bytes();
    let unterminated = || (from.saturating_sub(1), "unterminated quoted string".to_owned());
    let mut out: Vec<u8> = Vec::new();
    let mut i = from;
    loop {
        let Some(&c) = b.get(i) else {
            return Err(unterminated());
        };
        match c {
            b'\'' if b.get(i + 1) == Some(&b'\'') => {
                out.push(b'\'');
                i += 2;
            }
            b'\'' => {
                i += 1;
                break;
            }
            b'\\' => {
                let Some(&e) = b.get(i + 1) else {
                    return Err(unterminated());
                };
                let escape_at = i;
                i += 2;
                match e {
                    b'b' => out.push(0x08),
                    b'f' => out.push(0x0c),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'0'..=b'7' => {
                        let (value, used) = radix_digits(b, i - 1, 8, 3);
                        out.push((value & 0xff) as u8);
                        i += used - 1;
                    }
                    b'x' => {
                        let (value, used) = radix_digits(b, i, 16, 2);
                        if used == 0 {
                            out.push(b'x');
                        } else {
                            out.push((value & 0xff) as u8);
                            i += used;
                        }
                    }
                    b'u' | b'U' => {
                        let (ch, used) = unicode_escape(b, escape_at)
                            .ok_or_else(|| (escape_at, "invalid Unicode escape in E'...' string".to_owned()))?;
                        let mut utf8 = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
                        i = escape_at + used;
                    }
                    other => out.push(other),
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(|s| (s, i))
        .map_err(|_| (from.saturating_sub(1), "invalid UTF-8 in E'...' string".into()))
}

/// Up to `max` digits of `radix` at `b[at..]`: (value, digits used).
fn radix_digits(b: &[u8], at: usize, radix: u32, max: usize) -> (u32, usize) {
    let mut value = 0u32;
    let mut used = 0;
    while used < max {
        let Some(d) = b.get(at + used).and_then(|&c| char::from(c).to_digit(radix)) else {
            break;
        };
        value = value * radix + d;
        used += 1;
    }
    (value, used)
}

/// `\uXXXX` / `\UXXXXXXXX` at `b[at..]` (surrogate pairs as two `\u`): (char, bytes used).
fn unicode_escape(b: &[u8], at: usize) -> Option<(char, usize)> {
    let digits = if b.get(at + 1) == Some(&b'U') { 8 } else { 4 };
    let (code, used) = radix_digits(b, at + 2, 16, digits);
    if used != digits {
        return None;
    }
    let len = 2 + digits;
    if (0xd800..0xdc00).contains(&code) {
        if b.get(at + len) != Some(&b'\\') || b.get(at + len + 1) != Some(&b'u') {
            return None;
        }
        let (low, used) = radix_digits(b, at + len + 2, 16, 4);
        if used != 4 || !(0xdc00..0xe000).contains(&low) {
            return None;
        }
        let combined = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        return char::from_u32(combined).map(|c| (c, len + 6));
    }
    char::from_u32(code).map(|c| (c, len))
}

/// Text form of B'0101' / X'1F' bit-string literals.
fn bit_string(digits: &str, hex: bool) -> Result<String, String> {
    if !hex {
        if digits.bytes().all(|c| c == b'0' || c == b'1') {
            return Ok(digits.to_owned());
        }
        return Err(format!("invalid binary digit in B'{digits}'"));
    }
    let mut out = String::with_capacity(digits.len() * 4);
    for c in digits.chars() {
        let v = c.to_digit(16).ok_or_else(|| format!("invalid hexadecimal digit in X'{digits}'"))?;
        for bit in (0..4).rev() {
            out.push(if v >> bit & 1 == 1 { '1' } else { '0' });
        }
    }
    Ok(out)
}

/// Byte offset → 1-based line, counting forward from the last query (tuples come in order).
struct LineMap<'a> {
    text: &'a [u8],
    pos: usize,
    line: usize,
    first: usize,
}

impl<'a> LineMap<'a> {
    fn new(text: &'a str, first: usize) -> Self {
        Self { text: text.as_bytes(), pos: 0, line: first, first }
    }

    fn at(&mut self, pos: usize) -> usize {
        let pos = pos.min(self.text.len());
        if pos < self.pos {
            self.pos = 0;
            self.line = self.first;
        }
        self.line += self.text[self.pos..pos].iter().filter(|&&c| c == b'\n').count();
        self.pos = pos;
        self.line
    }
}

/// One VALUES item.
enum Value {
    Scalar(Option<String>),
    /// ARRAY[...] in text form; unlike a scalar it is not quoted when nested in another array.
    Array(String),
    /// `DEFAULT`: the column is left out of the row.
    Default,
}

impl Value {
    fn into_text(self) -> Option<String> {
        match self {
            Value::Scalar(s) => s,
            Value::Array(a) => Some(a),
            Value::Default => None,
        }
    }
}

struct Parser<'a> {
    toks: &'a [Tok],
    i: usize,
    lines: LineMap<'a>,
    end: usize,
}

impl<'a> Parser<'a> {
    fn new(toks: &'a [Tok], text: &'a str, start_line: usize) -> Self {
        Self { toks, i: 0, lines: LineMap::new(text, start_line), end: text.len() }
    }

    fn peek(&self) -> Option<&'a T> {
        self.toks.get(self.i).map(|t| &t.t)
    }

    fn bump(&mut self) -> Option<&'a T> {
        let t = self.toks.get(self.i).map(|t| &t.t);
        if t.is_some() {
            self.i += 1;
        }
        t
    }

    /// Line of the current token.
    fn line(&mut self) -> usize {
        let pos = self.toks.get(self.i).map_or(self.end, |t| t.pos);
        self.lines.at(pos)
    }

    fn found(&self) -> String {
        match self.peek() {
            None => "end of statement".to_owned(),
            Some(T::Word(w)) => format!("`{w}`"),
            Some(T::Quoted(q)) => format!("\"{q}\""),
            Some(T::Str(_)) => "a string literal".to_owned(),
            Some(T::Num(n)) => format!("`{n}`"),
            Some(T::Cast) => "`::`".to_owned(),
            Some(T::Param) => "a $n parameter".to_owned(),
            Some(T::Punct(c)) => format!("`{}`", char::from(*c)),
        }
    }

    fn error(&mut self, message: impl Into<String>) -> DumpError {
        let line = self.line();
        DumpError::new(line, message)
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(T::Word(w)) if w == word)
    }

    fn eat_word(&mut self, word: &str) -> bool {
        let yes = self.is_word(word);
        if yes {
            self.i += 1;
        }
        yes
    }

    fn expect_word(&mut self, word: &str) -> Result<(), DumpError> {
        if self.eat_word(word) {
            return Ok(());
        }
        let message = format!("expected {}, found {}", word.to_ascii_uppercase(), self.found());
        Err(self.error(message))
    }

    fn is_punct(&self, c: u8) -> bool {
        self.peek() == Some(&T::Punct(c))
    }

    fn eat_punct(&mut self, c: u8) -> bool {
        let yes = self.is_punct(c);
        if yes {
            self.i += 1;
        }
        yes
    }

    fn expect_punct(&mut self, c: u8) -> Result<(), DumpError> {
        if self.eat_punct(c) {
            return Ok(());
        }
        let message = format!("expected `{}`, found {}", char::from(c), self.found());
        Err(self.error(message))
    }

    fn expect_end(&mut self, what: &str) -> Result<(), DumpError> {
        self.eat_punct(b';');
        if self.peek().is_none() {
            return Ok(());
        }
        let message = format!("unexpected {} in {what} statement", self.found());
        Err(self.error(message))
    }

    fn ident(&mut self) -> Result<String, DumpError> {
        match self.peek() {
            Some(T::Word(w) | T::Quoted(w)) => {
                self.i += 1;
                Ok(w.clone())
            }
            _ => {
                let message = format!("expected a name, found {}", self.found());
                Err(self.error(message))
            }
        }
    }

    /// `[schema.]name`; returns the name without schema.
    fn qualified_name(&mut self) -> Result<String, DumpError> {
        let mut name = self.ident()?;
        while self.eat_punct(b'.') {
            name = self.ident()?;
        }
        Ok(name)
    }

    /// `(a, "B", c)`
    fn ident_list(&mut self) -> Result<Vec<String>, DumpError> {
        self.expect_punct(b'(')?;
        let mut names = Vec::new();
        if self.eat_punct(b')') {
            return Ok(names);
        }
        loop {
            names.push(self.ident()?);
            if self.eat_punct(b',') {
                continue;
            }
            self.expect_punct(b')')?;
            return Ok(names);
        }
    }

    /// Skips the rest of one CREATE TABLE element, up to its `,` or the closing `)`.
    fn skip_element(&mut self) -> Result<(), DumpError> {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated column list in CREATE TABLE")),
                Some(T::Punct(b'(' | b'[')) => depth += 1,
                Some(T::Punct(b')' | b']')) if depth > 0 => depth -= 1,
                Some(T::Punct(b')' | b',')) if depth == 0 => return Ok(()),
                Some(_) => {}
            }
            self.i += 1;
        }
    }

    /// One VALUES item: a literal, NULL, true/false, DEFAULT, ARRAY[...], a signed number or a
    /// parenthesised item, each optionally followed by `::type` casts (which do not change the text).
    fn value(&mut self, depth: usize) -> Result<Value, DumpError> {
        if depth > MAX_DEPTH {
            return Err(self.error("expression nested too deeply"));
        }
        let line = self.line();
        let unsupported = |what: String| {
            DumpError::new(
                line,
                format!(
                    "unsupported expression {what} in VALUES: only literals, NULL, true/false, ARRAY[...] and \
                     ::type casts are supported"
                ),
            )
        };
        let found = self.found();
        let value = match self.bump() {
            None => return Err(self.error("expected a value, found end of statement")),
            Some(T::Word(w)) => match w.as_str() {
                "null" => Value::Scalar(None),
                "true" => Value::Scalar(Some("t".to_owned())),
                "false" => Value::Scalar(Some("f".to_owned())),
                "default" => return Ok(Value::Default),
                "array" => {
                    self.expect_punct(b'[')?;
                    Value::Array(self.array(depth + 1)?)
                }
                _ => return Err(unsupported(found)),
            },
            Some(T::Str(s)) => Value::Scalar(Some(s.clone())),
            Some(T::Num(n)) => Value::Scalar(Some(n.clone())),
            Some(T::Punct(sign @ (b'-' | b'+'))) => match self.bump() {
                Some(T::Num(n)) if *sign == b'-' => Value::Scalar(Some(format!("-{n}"))),
                Some(T::Num(n)) => Value::Scalar(Some(n.clone())),
                _ => return Err(unsupported(found)),
            },
            Some(T::Punct(b'(')) => {
                let inner = self.value(depth + 1)?;
                self.expect_punct(b')')?;
                if matches!(inner, Value::Default) {
                    return Err(unsupported("(DEFAULT)".to_owned()));
                }
                inner
            }
            Some(_) => return Err(unsupported(found)),
        };
        while self.peek() == Some(&T::Cast) {
            self.i += 1;
            self.type_name()?;
        }
        Ok(value)
    }

    /// Body of ARRAY[...] after its `[`, as PostgreSQL's array text form.
    fn array(&mut self, depth: usize) -> Result<String, DumpError> {
        if depth > MAX_DEPTH {
            return Err(self.error("ARRAY nested too deeply"));
        }
        let mut out = String::from("{");
        if !self.eat_punct(b']') {
            loop {
                if self.eat_punct(b'[') {
                    out.push_str(&self.array(depth + 1)?);
                } else {
                    match self.value(depth + 1)? {
                        Value::Scalar(None) => out.push_str("NULL"),
                        Value::Scalar(Some(s)) => push_array_element(&mut out, &s),
                        Value::Array(a) => out.push_str(&a),
                        Value::Default => return Err(self.error("DEFAULT is not allowed inside ARRAY[...]")),
                    }
                }
                if self.eat_punct(b',') {
                    out.push(',');
                    continue;
                }
                self.expect_punct(b']')?;
                break;
            }
        }
        out.push('}');
        Ok(out)
    }

    /// A type name after `::`: `text`, `public.t`, `"T"`, `timestamp with time zone`,
    /// `character varying(10)`, `numeric(10,2)`, `text[]`, `int[3]`.
    fn type_name(&mut self) -> Result<(), DumpError> {
        let mut any = false;
        loop {
            match self.peek() {
                Some(T::Word(_) | T::Quoted(_)) => self.i += 1,
                Some(T::Punct(b'.')) if any => self.i += 1,
                Some(T::Punct(b'(')) if any => {
                    self.i += 1;
                    while !self.eat_punct(b')') {
                        match self.bump() {
                            Some(T::Num(_) | T::Punct(b',') | T::Word(_)) => {}
                            _ => return Err(self.error("bad type modifier after ::")),
                        }
                    }
                }
                Some(T::Punct(b'[')) if any => {
                    self.i += 1;
                    self.eat_num();
                    self.expect_punct(b']')?;
                }
                _ => break,
            }
            any = true;
        }
        if any {
            return Ok(());
        }
        let message = format!("expected a type name after ::, found {}", self.found());
        Err(self.error(message))
    }

    fn eat_num(&mut self) {
        if matches!(self.peek(), Some(T::Num(_))) {
            self.i += 1;
        }
    }
}

/// Appends one array element in PostgreSQL's array text form (quoted when it has to be).
fn push_array_element(out: &mut String, element: &str) {
    let needs_quotes = element.is_empty()
        || element.eq_ignore_ascii_case("null")
        || element.bytes().any(|c| matches!(c, b'{' | b'}' | b',' | b'"' | b'\\') || is_space_byte(c));
    if !needs_quotes {
        out.push_str(element);
        return;
    }
    out.push('"');
    for c in element.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------------
// COPY text format
// ---------------------------------------------------------------------------------------------

/// Splits and decodes one COPY data line (without its newline).
fn decode_copy_row(data: &[u8], columns: &[String]) -> Result<Vec<Option<String>>, String> {
    let expected = columns.len();
    if expected == 0 {
        return if data.is_empty() { Ok(Vec::new()) } else { Err("data row for a COPY without columns".into()) };
    }
    let mut values = Vec::with_capacity(expected);
    for (index, field) in data.split(|&c| c == b'\t').enumerate() {
        let Some(column) = columns.get(index) else {
            let found = data.split(|&c| c == b'\t').count();
            return Err(format!("row has {found} fields, expected {expected}"));
        };
        values.push(decode_copy_field(field).map_err(|message| format!("column {column}: {message}"))?);
    }
    if values.len() != expected {
        return Err(format!("row has {} fields, expected {expected}", values.len()));
    }
    Ok(values)
}

/// Decodes one COPY text-format field. Stricter than PostgreSQL, which takes an unknown `\c` as
/// `c`: pg_dump never writes one, so it means a corrupt dump.
fn decode_copy_field(field: &[u8]) -> Result<Option<String>, String> {
    if field == b"\\N" {
        return Ok(None);
    }
    let Some(first) = field.iter().position(|&c| c == b'\\') else {
        return std::str::from_utf8(field).map(|s| Some(s.to_owned())).map_err(|_| "invalid UTF-8".to_owned());
    };
    let mut out = Vec::with_capacity(field.len());
    out.extend_from_slice(&field[..first]);
    let mut i = first;
    while let Some(&c) = field.get(i) {
        if c != b'\\' {
            let run = field[i..].iter().position(|&c| c == b'\\').unwrap_or(field.len() - i);
            out.extend_from_slice(&field[i..i + run]);
            i += run;
            continue;
        }
        let Some(&e) = field.get(i + 1) else {
            return Err("backslash at end of line".to_owned());
        };
        i += 2;
        match e {
            b'\\' => out.push(b'\\'),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let (value, used) = radix_digits(field, i - 1, 8, 3);
                out.push((value & 0xff) as u8);
                i += used - 1;
            }
            b'x' => {
                let (value, used) = radix_digits(field, i, 16, 2);
                if used == 0 {
                    return Err("bad escape \\x without hex digits".to_owned());
                }
                out.push((value & 0xff) as u8);
                i += used;
            }
            b'N' => return Err("\\N is only valid as a whole field (NULL)".to_owned()),
            b'.' => return Err("the end-of-data marker \\. must be alone on its line".to_owned()),
            other if other.is_ascii_graphic() => return Err(format!("bad escape \\{}", char::from(other))),
            other => return Err(format!("bad escape: backslash followed by byte 0x{other:02x}")),
        }
    }
    String::from_utf8(out).map(Some).map_err(|_| "invalid UTF-8 after unescaping".to_owned())
}

// ---------------------------------------------------------------------------------------------
// Writers
// ---------------------------------------------------------------------------------------------

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex_escape(out: &mut String, byte: u8) {
    out.push_str("\\x");
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0xf)]));
}

/// Escapes one value for COPY text format: `None` → `\N`; backslash, tab, newline, CR, the other
/// C escapes and every other control character are escaped, so a row is exactly one line.
/// A NUL cannot be stored in PostgreSQL text; it is written as `\x00`, which PostgreSQL rejects.
pub fn copy_field(value: Option<&str>) -> String {
    let mut out = String::new();
    push_copy_field(&mut out, value);
    out
}

fn push_copy_field(out: &mut String, value: Option<&str>) {
    let Some(value) = value else {
        out.push_str("\\N");
        return;
    };
    let mut segment = 0;
    for (i, c) in value.bytes().enumerate() {
        let escape = match c {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0b => "\\v",
            0x0c => "\\f",
            0..0x20 | 0x7f => "",
            _ => continue,
        };
        out.push_str(&value[segment..i]);
        if escape.is_empty() {
            push_hex_escape(out, c);
        } else {
            out.push_str(escape);
        }
        segment = i + 1;
    }
    out.push_str(&value[segment..]);
}

/// Writes a full COPY block: `COPY public.<table> (<quoted cols>) FROM stdin;`, one line per row,
/// then `\.`. Returns the number of rows; a row whose length differs from `columns` is an
/// `InvalidInput` error (the block is then incomplete).
pub fn write_copy<W: Write>(
    out: &mut W,
    table: &str,
    columns: &[&str],
    rows: impl IntoIterator<Item = Vec<Option<String>>>,
) -> io::Result<usize> {
    let mut line = String::from("COPY public.");
    line.push_str(&quote_ident(table));
    if !columns.is_empty() {
        let quoted: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
        line.push_str(" (");
        line.push_str(&quoted.join(", "));
        line.push(')');
    }
    line.push_str(" FROM stdin;\n");
    out.write_all(line.as_bytes())?;
    let mut count = 0;
    for row in rows {
        if row.len() != columns.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("COPY {table}: row {} has {} values for {} columns", count + 1, row.len(), columns.len()),
            ));
        }
        line.clear();
        for (i, value) in row.iter().enumerate() {
            if i > 0 {
                line.push('\t');
            }
            push_copy_field(&mut line, value.as_deref());
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
        count += 1;
    }
    out.write_all(b"\\.\n")?;
    Ok(count)
}

/// A SQL string literal or `NULL`. Plain `'...'` (quotes doubled) unless the value holds a
/// backslash or a control character; then `E'...'`, whose meaning does not depend on
/// `standard_conforming_strings` and which keeps the statement on one line.
pub fn sql_literal(value: Option<&str>) -> String {
    let Some(value) = value else {
        return "NULL".to_owned();
    };
    let needs_escapes = value.bytes().any(|c| c == b'\\' || c < 0x20 || c == 0x7f);
    let mut out = String::with_capacity(value.len() + 3);
    if !needs_escapes {
        out.push('\'');
        out.push_str(&value.replace('\'', "''"));
        out.push('\'');
        return out;
    }
    out.push_str("E'");
    let mut segment = 0;
    for (i, c) in value.bytes().enumerate() {
        let escape = match c {
            b'\\' => "\\\\",
            b'\'' => "''",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..0x20 | 0x7f => "",
            _ => continue,
        };
        out.push_str(&value[segment..i]);
        if escape.is_empty() {
            push_hex_escape(&mut out, c);
        } else {
            out.push_str(escape);
        }
        segment = i + 1;
    }
    out.push_str(&value[segment..]);
    out.push('\'');
    out
}

/// An identifier for SQL, double-quoted only when needed: anything but `[a-z_][a-z0-9_]*`, and
/// every keyword that is not "unreserved" (`user`, `order`, `timestamp`, ...), like PostgreSQL's
/// own `quote_ident`.
pub fn quote_ident(name: &str) -> String {
    let plain = name.bytes().next().is_some_and(|c| c.is_ascii_lowercase() || c == b'_')
        && name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        && KEYWORDS.binary_search(&name).is_err();
    if plain { name.to_owned() } else { format!("\"{}\"", name.replace('"', "\"\"")) }
}

/// PostgreSQL's reserved, column-name and type/function-name keywords (everything `quote_ident`
/// quotes), sorted for binary search. Over-quoting is harmless, so later versions' words are in.
const KEYWORDS: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "between",
    "bigint",
    "binary",
    "bit",
    "boolean",
    "both",
    "case",
    "cast",
    "char",
    "character",
    "check",
    "coalesce",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "dec",
    "decimal",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "exists",
    "extract",
    "false",
    "fetch",
    "float",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "greatest",
    "group",
    "grouping",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "inout",
    "int",
    "integer",
    "intersect",
    "interval",
    "into",
    "is",
    "isnull",
    "join",
    "json",
    "json_array",
    "json_arrayagg",
    "json_exists",
    "json_object",
    "json_objectagg",
    "json_query",
    "json_scalar",
    "json_serialize",
    "json_table",
    "json_value",
    "lateral",
    "leading",
    "least",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "merge_action",
    "national",
    "natural",
    "nchar",
    "none",
    "normalize",
    "not",
    "notnull",
    "null",
    "nullif",
    "numeric",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "out",
    "outer",
    "overlaps",
    "overlay",
    "placing",
    "position",
    "precision",
    "primary",
    "real",
    "references",
    "returning",
    "right",
    "row",
    "select",
    "session_user",
    "setof",
    "similar",
    "smallint",
    "some",
    "substring",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "time",
    "timestamp",
    "to",
    "trailing",
    "treat",
    "trim",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "values",
    "varchar",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
    "xmlattributes",
    "xmlconcat",
    "xmlelement",
    "xmlexists",
    "xmlforest",
    "xmlnamespaces",
    "xmlparse",
    "xmlpi",
    "xmlroot",
    "xmlserialize",
    "xmltable",
];

#[cfg(test)]
mod tests;
