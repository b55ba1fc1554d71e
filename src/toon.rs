//! TOON ("Token-Oriented Object Notation", spec v2.0): the format of ARES agent configurations
//! (`config/*.toon`, user-agent import/export, `?format=toon`).
//!
//! Written from the API spec (§5.1) rather than pulling in the `toon-format` crate, because the
//! server only needs the subset agent documents use, must never panic on hostile uploads, and must
//! differ from that crate in one visible way: it quotes every string that merely *contains* `-`,
//! while the reference test suite asserts the export line `name: toon-test-agent`. So interior
//! hyphens stay bare here and only a *leading* `-` (which would read as a list item) forces quotes;
//! the decoder accepts both spellings.
//!
//! Values use `serde_json::Value` so decoded documents plug straight into the JSON side of the API.
//! Errors carry a 1-based line and column because import reports them to the user verbatim
//! (`Invalid TOON format: Parse error at line L, column C: ...`).

use std::collections::HashMap;

use serde_json::{Map, Number, Value};

/// Deeper documents are rejected so a crafted upload cannot exhaust the stack.
const MAX_DEPTH: usize = 64;
const INDENT: &str = "  ";
const MULTIPLE_ROOT: &str = "Multiple values at root level are not allowed in strict mode";
/// A YAML block-scalar header followed by an indented block is a common mistake worth naming.
const BLOCK_SCALARS: [&str; 6] = ["|", "|-", "|+", ">", ">-", ">+"];

/// A decoding failure with its 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Parse error at line {line}, column {column}: {message}")]
pub struct ToonError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Decode a document's root object as (key, value) pairs in first-appearance order (a repeated
/// key keeps its first position and its last value).
///
/// An empty document decodes to no fields: deciding which fields are missing is the caller's job.
pub fn decode(text: &str) -> Result<Vec<(String, Value)>, ToonError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    Parser { lines: split_lines(text)?, pos: 0 }.root()
}

/// Encode a root object; `fields` are written in the given order, nested objects with their keys
/// sorted (serde_json's map order).
///
/// Like the reference encoder, no trailing newline is written.
pub fn encode(fields: &[(String, Value)]) -> String {
    let mut out = Vec::new();
    for (key, value) in fields {
        encode_field(Some(key), value, 0, &mut out);
    }
    out.join("\n")
}

// ------------------------------------------------------------------------------------------------
// Decoding

/// A non-blank line with its indentation already validated, so the parser only reasons in levels.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    number: usize,
    indent: usize,
    depth: usize,
    text: &'a str,
}

impl<'a> Line<'a> {
    /// Offsets are byte offsets into `text`; columns are reported in characters for humans.
    fn error(&self, offset: usize, message: impl Into<String>) -> ToonError {
        let chars = self.text.get(..offset).map_or(offset, |prefix| prefix.chars().count());
        ToonError { line: self.number, column: self.indent + chars + 1, message: message.into() }
    }

    fn rest(&self, offset: usize) -> &'a str {
        self.text.get(offset..).unwrap_or("")
    }
}

fn split_lines(text: &str) -> Result<Vec<Line<'_>>, ToonError> {
    let mut lines = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() {
            continue;
        }
        let number = index + 1;
        let body = raw.trim_start_matches(' ');
        let indent = raw.len() - body.len();
        if body.starts_with('\t') {
            let message = "Tab characters are not allowed in indentation";
            return Err(ToonError { line: number, column: indent + 1, message: message.into() });
        }
        if indent % 2 != 0 {
            let message = format!("Indentation must be a multiple of 2 spaces, found {indent}");
            return Err(ToonError { line: number, column: 1, message });
        }
        lines.push(Line { number, indent, depth: indent / 2, text: body.trim_end() });
    }
    Ok(lines)
}

/// What precedes the `:` of a line: the key (absent for `- [N]:` list items) and an array header.
struct Header {
    key: Option<String>,
    array: Option<ArrayHeader>,
    /// Byte offset of the text after the `:`.
    rest: usize,
}

struct ArrayHeader {
    len: usize,
    fields: Option<Vec<String>>,
}

struct Parser<'a> {
    lines: Vec<Line<'a>>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Line<'a>> {
        self.lines.get(self.pos).copied()
    }

    fn root(mut self) -> Result<Vec<(String, Value)>, ToonError> {
        let mut fields: Vec<(String, Value)> = Vec::new();
        // An index instead of a linear scan keeps a large hostile upload from going quadratic.
        let mut index: HashMap<String, usize> = HashMap::new();
        while let Some(line) = self.peek() {
            if line.depth > 0 {
                return Err(line.error(0, unexpected_indent(0, line.indent)));
            }
            reject_comment(line)?;
            let Some(header) = parse_header(line, 0, false)? else {
                // Like the reference decoder: a bare first line is a root primitive, so it is the
                // *next* line that breaks the document.
                if fields.is_empty() {
                    if let Some(next) = self.lines.get(self.pos + 1) {
                        return Err(next.error(0, MULTIPLE_ROOT));
                    }
                    return Err(line.error(0, "Expected `key: value`; the document root must be an object"));
                }
                return Err(line.error(0, MULTIPLE_ROOT));
            };
            let key = header.key.clone().unwrap_or_default();
            let value = self.value(line, &header, 0)?;
            match index.get(&key) {
                Some(&i) => {
                    if let Some(slot) = fields.get_mut(i) {
                        slot.1 = value;
                    }
                }
                None => {
                    index.insert(key.clone(), fields.len());
                    fields.push((key, value));
                }
            }
        }
        Ok(fields)
    }

    /// Fields at exactly `depth`, up to the first shallower line.
    fn object(&mut self, depth: usize) -> Result<Map<String, Value>, ToonError> {
        let mut map = Map::new();
        while let Some(line) = self.peek() {
            if line.depth < depth {
                break;
            }
            if line.depth > depth {
                return Err(line.error(0, unexpected_indent(depth, line.indent)));
            }
            reject_comment(line)?;
            let Some(header) = parse_header(line, 0, false)? else {
                return Err(line.error(0, format!("Expected `key: value`, found '{}'", preview(line.text))));
            };
            let key = header.key.clone().unwrap_or_default();
            let value = self.value(line, &header, depth)?;
            map.insert(key, value);
        }
        Ok(map)
    }

    /// The value of the field whose header is on the current line; the field sits at `depth`, so
    /// its children (if any) sit at `depth + 1`.
    fn value(&mut self, line: Line<'a>, header: &Header, depth: usize) -> Result<Value, ToonError> {
        if depth >= MAX_DEPTH {
            return Err(line.error(0, format!("Nesting deeper than {MAX_DEPTH} levels is not supported")));
        }
        self.pos += 1;
        let raw = line.rest(header.rest);
        let rest = raw.trim();
        let rest_offset = header.rest + (raw.len() - raw.trim_start().len());
        match &header.array {
            None if rest.is_empty() => Ok(Value::Object(self.object(depth + 1)?)),
            None => {
                if BLOCK_SCALARS.contains(&rest) && self.peek().is_some_and(|next| next.depth > depth) {
                    let message = "YAML block scalars are not supported; write a quoted string with \\n escapes";
                    return Err(line.error(rest_offset, message));
                }
                primitive(line, rest_offset, rest)
            }
            Some(ArrayHeader { len, fields: None }) if rest.is_empty() => {
                if *len == 0 {
                    Ok(Value::Array(Vec::new()))
                } else {
                    self.list(line, *len, depth + 1)
                }
            }
            Some(ArrayHeader { len, fields: None }) => inline(line, rest_offset, rest, *len),
            Some(ArrayHeader { len, fields: Some(fields) }) => {
                if !rest.is_empty() {
                    return Err(line.error(rest_offset, "Unexpected text after a tabular array header"));
                }
                self.table(line, *len, fields, depth + 1)
            }
        }
    }

    /// Rows of a tabular array; strict counts, as in the reference decoder's strict mode.
    fn table(&mut self, header: Line<'a>, len: usize, fields: &[String], depth: usize) -> Result<Value, ToonError> {
        let mut rows = Vec::with_capacity(len.min(1024));
        for found in 0..len {
            let line = match self.peek() {
                Some(line) if line.depth >= depth => line,
                _ => return Err(header.error(0, count_mismatch(len, &found.to_string(), "rows"))),
            };
            if line.depth > depth {
                return Err(line.error(0, unexpected_indent(depth, line.indent)));
            }
            let cells = split_cells(line.text);
            if cells.len() != fields.len() {
                let message = format!("Expected {} values in row, found {}", fields.len(), cells.len());
                return Err(line.error(0, message));
            }
            let mut row = Map::new();
            for (field, (offset, cell)) in fields.iter().zip(cells) {
                row.insert(field.clone(), primitive(line, offset, cell)?);
            }
            self.pos += 1;
            rows.push(Value::Object(row));
        }
        self.check_no_more(len, depth, "rows")?;
        Ok(Value::Array(rows))
    }

    /// `- item` lines of a list-form array.
    fn list(&mut self, header: Line<'a>, len: usize, depth: usize) -> Result<Value, ToonError> {
        let mut items = Vec::with_capacity(len.min(1024));
        for found in 0..len {
            let line = match self.peek() {
                Some(line) if line.depth >= depth => line,
                _ => return Err(header.error(0, count_mismatch(len, &found.to_string(), "items"))),
            };
            if line.depth > depth {
                return Err(line.error(0, unexpected_indent(depth, line.indent)));
            }
            let item = if line.text == "-" {
                self.pos += 1;
                Value::Object(Map::new())
            } else if let Some(after) = line.text.strip_prefix("- ") {
                let start = line.text.len() - after.trim_start().len();
                self.list_item(line, start, depth)?
            } else {
                return Err(line.error(0, "Expected a list item starting with '- '"));
            };
            items.push(item);
        }
        self.check_no_more(len, depth, "items")?;
        Ok(Value::Array(items))
    }

    /// One list item starting at byte `start` of `line` (after the `- `), the hyphen at `depth`.
    fn list_item(&mut self, line: Line<'a>, start: usize, depth: usize) -> Result<Value, ToonError> {
        match parse_header(line, start, true)? {
            // `- [N]: ...`: an array item; its rows or items sit one level below the hyphen.
            Some(header @ Header { key: None, .. }) => self.value(line, &header, depth),
            // An object item: the first field shares the hyphen line but belongs one level deeper,
            // like the fields that follow it.
            Some(header) => {
                let key = header.key.clone().unwrap_or_default();
                let first = self.value(line, &header, depth + 1)?;
                let mut map = Map::new();
                map.insert(key, first);
                for (key, value) in self.object(depth + 1)? {
                    map.insert(key, value);
                }
                Ok(Value::Object(map))
            }
            None => {
                self.pos += 1;
                primitive(line, start, line.rest(start))
            }
        }
    }

    fn check_no_more(&self, len: usize, depth: usize, what: &str) -> Result<(), ToonError> {
        match self.peek() {
            Some(next) if next.depth == depth => Err(next.error(0, count_mismatch(len, "more", what))),
            Some(next) if next.depth > depth => Err(next.error(0, unexpected_indent(depth, next.indent))),
            _ => Ok(()),
        }
    }
}

/// Parses `key:`, `key[N]:`, `key[N]{f1,f2}:` (and, for list items, `[N]...:`) starting at byte
/// `start`; `Ok(None)` means the text has no key structure and is a bare value.
fn parse_header(line: Line<'_>, start: usize, keyless: bool) -> Result<Option<Header>, ToonError> {
    let text = line.rest(start);
    let (key, mut pos) = match text.chars().next() {
        None => return Ok(None),
        Some('"') => {
            let (key, used) = parse_quoted(line, start, text)?;
            let after = text.get(used..).unwrap_or("");
            let pos = used + (after.len() - after.trim_start().len());
            if !matches!(text.as_bytes().get(pos), Some(b':' | b'[')) {
                return Ok(None);
            }
            (Some(key), pos)
        }
        Some('[') if keyless => (None, 0),
        Some(c @ ('{' | '}' | '[' | ']' | ',')) => {
            return Err(line.error(start, format!("Expected key, found '{c}'")));
        }
        Some(_) => {
            let Some(end) = text.find([':', '[']) else { return Ok(None) };
            let key = text.get(..end).unwrap_or("").trim_end();
            if key.starts_with('-') {
                return Err(line.error(start, "Expected key, found '-'"));
            }
            if let Some((i, c)) = key.char_indices().find(|(_, c)| matches!(c, '"' | '{' | '}' | ']' | ',')) {
                return Err(line.error(start + i, format!("Unexpected '{c}' in unquoted key")));
            }
            (Some(key.to_owned()), end)
        }
    };
    let bytes = text.as_bytes();
    let mut array = None;
    if bytes.get(pos) == Some(&b'[') {
        let inner_start = pos + 1;
        let Some(close) = text.get(inner_start..).and_then(|s| s.find(']')) else {
            return Err(line.error(start + pos, "Unterminated array header: missing ']'"));
        };
        let inner = text.get(inner_start..inner_start + close).unwrap_or("");
        if inner.is_empty() || !inner.bytes().all(|b| b.is_ascii_digit()) {
            let message = format!("Invalid array length '{inner}' (only `[N]` with the comma delimiter is supported)");
            return Err(line.error(start + inner_start, message));
        }
        let len: usize =
            inner.parse().map_err(|_| line.error(start + inner_start, format!("Array length {inner} is too large")))?;
        pos = inner_start + close + 1;
        let mut fields = None;
        if bytes.get(pos) == Some(&b'{') {
            let body_start = pos + 1;
            let body_text = text.get(body_start..).unwrap_or("");
            let Some(close) = find_unquoted(body_text, '}') else {
                return Err(line.error(start + pos, "Unterminated field list: missing '}'"));
            };
            let body = body_text.get(..close).unwrap_or("");
            let mut names = Vec::new();
            for (offset, cell) in split_cells(body) {
                names.push(field_name(line, start + body_start + offset, cell)?);
            }
            fields = Some(names);
            pos = body_start + close + 1;
        }
        array = Some(ArrayHeader { len, fields });
    }
    if bytes.get(pos) != Some(&b':') {
        return Err(line.error(start + pos, "Expected ':' after key"));
    }
    if key.as_deref() == Some("") && text.starts_with(':') {
        return Err(line.error(start, "Missing key before ':'"));
    }
    Ok(Some(Header { key, array, rest: start + pos + 1 }))
}

fn field_name(line: Line<'_>, offset: usize, raw: &str) -> Result<String, ToonError> {
    let name = raw.trim_start();
    let offset = offset + (raw.len() - name.len());
    let name = name.trim_end();
    if name.starts_with('"') {
        let (value, used) = parse_quoted(line, offset, name)?;
        if used != name.len() {
            return Err(line.error(offset + used, "Unexpected characters after closing quote"));
        }
        return Ok(value);
    }
    if name.is_empty() {
        return Err(line.error(offset, "Empty field name in tabular header"));
    }
    Ok(name.to_owned())
}

fn inline(line: Line<'_>, offset: usize, text: &str, len: usize) -> Result<Value, ToonError> {
    let cells = split_cells(text);
    if cells.len() != len {
        return Err(line.error(offset, count_mismatch(len, &cells.len().to_string(), "items")));
    }
    let items = cells.into_iter().map(|(at, cell)| primitive(line, offset + at, cell)).collect::<Result<_, _>>()?;
    Ok(Value::Array(items))
}

/// Splits on commas outside double quotes; each cell comes with its byte offset in `text`.
fn split_cells(text: &str) -> Vec<(usize, &str)> {
    let mut cells = Vec::new();
    let (mut start, mut in_quotes, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c == ',' {
            cells.push((start, text.get(start..i).unwrap_or("")));
            start = i + 1;
        }
    }
    cells.push((start, text.get(start..).unwrap_or("")));
    cells
}

fn find_unquoted(text: &str, target: char) -> Option<usize> {
    let (mut in_quotes, mut escaped) = (false, false);
    for (i, c) in text.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c == target {
            return Some(i);
        }
    }
    None
}

/// A primitive token (untrimmed) at byte `offset` of `line`.
fn primitive(line: Line<'_>, offset: usize, raw: &str) -> Result<Value, ToonError> {
    let token = raw.trim_start();
    let offset = offset + (raw.len() - token.len());
    let token = token.trim_end();
    if token.starts_with('"') {
        let (value, used) = parse_quoted(line, offset, token)?;
        if !token.get(used..).unwrap_or("").trim().is_empty() {
            return Err(line.error(offset + used, "Unexpected characters after closing quote"));
        }
        return Ok(Value::String(value));
    }
    Ok(match token {
        "null" => Value::Null,
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ if looks_numeric(token) && !has_leading_zero(token) => {
            number(token).ok_or_else(|| line.error(offset, format!("Number out of range: {token}")))?
        }
        _ => Value::String(token.to_owned()),
    })
}

/// Integral values become integers so `3`, `3.0` and `-0` all decode the way JSON users expect.
fn number(token: &str) -> Option<Value> {
    if !token.contains(['.', 'e', 'E']) {
        if let Ok(int) = token.parse::<i64>() {
            return Some(int.into());
        }
        if let Ok(int) = token.parse::<u64>() {
            return Some(int.into());
        }
    }
    let float = token.parse::<f64>().ok().filter(|f| f.is_finite())?;
    // i64::MIN is exactly representable; 2^63 (= i64::MAX + 1) is the first value that does not fit.
    if float.fract() == 0.0 && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&float) {
        return Some((float as i64).into());
    }
    Number::from_f64(float).map(Value::Number)
}

/// `text` starts with `"`; returns the unescaped string and the bytes used including both quotes.
fn parse_quoted(line: Line<'_>, offset: usize, text: &str) -> Result<(String, usize), ToonError> {
    let mut out = String::new();
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, 't')) => out.push('\t'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, other)) => {
                    return Err(line.error(offset + i, format!("Invalid escape sequence '\\{other}'")));
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(line.error(offset, "Unterminated string: missing closing quote"))
}

fn reject_comment(line: Line<'_>) -> Result<(), ToonError> {
    if line.text.starts_with('#') {
        return Err(line.error(0, "Comments are not supported"));
    }
    Ok(())
}

fn unexpected_indent(depth: usize, found: usize) -> String {
    format!("Unexpected indentation: expected {} spaces, found {found}", depth * INDENT.len())
}

fn count_mismatch(expected: usize, found: &str, what: &str) -> String {
    format!("Array length mismatch: expected {expected} {what}, found {found}")
}

fn preview(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(30).collect();
    if chars.next().is_some() { format!("{head}...") } else { head }
}

/// `-?digits[.digits][(e|E)[+-]digits]`: the shape the decoder reads as a number (unless it has a
/// leading zero), hence the shape the encoder must quote.
fn looks_numeric(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = usize::from(bytes.first() == Some(&b'-'));
    if !skip_digits(bytes, &mut i) {
        return false;
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        if !skip_digits(bytes, &mut i) {
            return false;
        }
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !skip_digits(bytes, &mut i) {
            return false;
        }
    }
    i == bytes.len()
}

fn skip_digits(bytes: &[u8], i: &mut usize) -> bool {
    let start = *i;
    while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
        *i += 1;
    }
    *i > start
}

/// `05` is not a canonical number, so TOON reads it as the string it probably is (a code, a zip).
fn has_leading_zero(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text).as_bytes();
    digits.first() == Some(&b'0') && digits.get(1).is_some_and(u8::is_ascii_digit)
}

// ------------------------------------------------------------------------------------------------
// Encoding

fn encode_field(key: Option<&str>, value: &Value, depth: usize, out: &mut Vec<String>) {
    let indent = INDENT.repeat(depth);
    let key = key.map(encode_key).unwrap_or_default();
    match value {
        Value::Object(map) => {
            out.push(format!("{indent}{key}:"));
            for (child_key, child) in map {
                encode_field(Some(child_key), child, depth + 1, out);
            }
        }
        Value::Array(items) => {
            let len = items.len();
            if items.is_empty() {
                out.push(format!("{indent}{key}[0]:"));
            } else if items.iter().all(is_primitive) {
                let cells: Vec<String> = items.iter().map(encode_primitive).collect();
                out.push(format!("{indent}{key}[{len}]: {}", cells.join(",")));
            } else if let Some(fields) = tabular_fields(items) {
                let names: Vec<String> = fields.iter().map(|name| encode_key(name)).collect();
                out.push(format!("{indent}{key}[{len}]{{{}}}:", names.join(",")));
                let row_indent = INDENT.repeat(depth + 1);
                for row in items.iter().filter_map(Value::as_object) {
                    let cells: Vec<String> =
                        fields.iter().map(|name| row.get(*name).map(encode_primitive).unwrap_or_default()).collect();
                    out.push(format!("{row_indent}{}", cells.join(",")));
                }
            } else {
                out.push(format!("{indent}{key}[{len}]:"));
                for item in items {
                    encode_list_item(item, depth + 1, out);
                }
            }
        }
        primitive => out.push(format!("{indent}{key}: {}", encode_primitive(primitive))),
    }
}

/// Mirrors the decoder: an object item's first field goes on the hyphen line but is laid out as a
/// field one level deeper (so `- ` simply takes the place of that level's indentation).
fn encode_list_item(item: &Value, depth: usize, out: &mut Vec<String>) {
    let indent = INDENT.repeat(depth);
    let start = out.len();
    match item {
        Value::Object(map) if map.is_empty() => out.push(format!("{indent}-")),
        Value::Object(map) => {
            for (key, value) in map {
                encode_field(Some(key), value, depth + 1, out);
            }
            if let Some(first) = out.get_mut(start) {
                let body = first.get(indent.len() + INDENT.len()..).unwrap_or("").to_owned();
                *first = format!("{indent}- {body}");
            }
        }
        Value::Array(_) => {
            encode_field(None, item, depth, out);
            if let Some(first) = out.get_mut(start) {
                let body = first.get(indent.len()..).unwrap_or("").to_owned();
                *first = format!("{indent}- {body}");
            }
        }
        primitive => out.push(format!("{indent}- {}", encode_primitive(primitive))),
    }
}

/// Tabular form needs every item to be a non-empty object of primitives with the same key set.
fn tabular_fields(items: &[Value]) -> Option<Vec<&String>> {
    let first = items.first()?.as_object()?;
    if first.is_empty() {
        return None;
    }
    let fields: Vec<&String> = first.keys().collect();
    for item in items {
        let object = item.as_object()?;
        let same_keys = object.len() == fields.len() && fields.iter().all(|name| object.contains_key(name.as_str()));
        if !same_keys || !object.values().all(is_primitive) {
            return None;
        }
    }
    Some(fields)
}

fn is_primitive(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

fn encode_primitive(value: &Value) -> String {
    match value {
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => encode_number(number),
        Value::String(text) => encode_string(text),
        Value::Null | Value::Array(_) | Value::Object(_) => "null".to_owned(),
    }
}

/// Plain decimal, never an exponent: Rust's `Display` for `f64` is already the shortest
/// round-tripping decimal without one.
fn encode_number(number: &Number) -> String {
    if let Some(int) = number.as_i64() {
        int.to_string()
    } else if let Some(int) = number.as_u64() {
        int.to_string()
    } else if let Some(float) = number.as_f64() {
        if float == 0.0 { "0".to_owned() } else { format!("{float}") }
    } else {
        number.to_string()
    }
}

fn encode_key(key: &str) -> String {
    let mut chars = key.chars();
    let bare = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '.');
    if bare { key.to_owned() } else { quote(key) }
}

fn encode_string(text: &str) -> String {
    if needs_quotes(text) { quote(text) } else { text.to_owned() }
}

/// The REC rule of §5.1, plus dotted version numbers (`1.2.0`): the spec's Example C writes
/// `version: "1.2.0"` and explains it as looking numeric.
fn needs_quotes(text: &str) -> bool {
    text.is_empty()
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
        || matches!(text, "true" | "false" | "null")
        || looks_numeric(text)
        || looks_like_version(text)
        || text.starts_with('-')
        || text.contains([':', '"', '\\', '[', ']', '{', '}', ',', '\n', '\r', '\t'])
}

fn looks_like_version(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_digit()) && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn fields(pairs: &[(&str, Value)]) -> Vec<(String, Value)> {
        pairs.iter().map(|(key, value)| ((*key).to_owned(), value.clone())).collect()
    }

    const EXAMPLE_A: &str = "name: toon-test-agent
model: balanced
system_prompt: You are a test agent for TOON format.
tools[0]:
max_tool_iterations: 5
parallel_tools: false";

    const EXAMPLE_B: &str = r#"name: code_reviewer
model: llama-3.3-70b
system_prompt: "You are an expert code reviewer.\nReport: bugs first, then style."
tools[2]: calculator,web_search
max_tool_iterations: 10
parallel_tools: true"#;

    const EXAMPLE_C: &str = r#"name: analyst
model: powerful
system_prompt: null
tools[1]: calculator
max_tool_iterations: 3
parallel_tools: false
owner:
  team: ops
  tags[2]: finance,"q1, q2"
  limits[2]{kind,value}:
    daily,100
    monthly,3000
temperature: 0.3
version: "1.2.0"
"#;

    #[test]
    fn example_a_round_trips_exactly() {
        let decoded = decode(EXAMPLE_A).unwrap();
        assert_eq!(
            decoded,
            fields(&[
                ("name", json!("toon-test-agent")),
                ("model", json!("balanced")),
                ("system_prompt", json!("You are a test agent for TOON format.")),
                ("tools", json!([])),
                ("max_tool_iterations", json!(5)),
                ("parallel_tools", json!(false)),
            ])
        );
        assert_eq!(encode(&decoded), EXAMPLE_A);
        // The reference crate's spelling is accepted too.
        let quoted = decode("name: \"toon-test-agent\"").unwrap();
        assert_eq!(quoted, fields(&[("name", json!("toon-test-agent"))]));
    }

    #[test]
    fn example_b_quotes_the_multi_line_prompt() {
        let doc = fields(&[
            ("name", json!("code_reviewer")),
            ("model", json!("llama-3.3-70b")),
            ("system_prompt", json!("You are an expert code reviewer.\nReport: bugs first, then style.")),
            ("tools", json!(["calculator", "web_search"])),
            ("max_tool_iterations", json!(10)),
            ("parallel_tools", json!(true)),
        ]);
        assert_eq!(encode(&doc), EXAMPLE_B);
        assert_eq!(decode(EXAMPLE_B).unwrap(), doc);
    }

    #[test]
    fn example_c_decodes_to_the_documented_values() {
        let expected = fields(&[
            ("name", json!("analyst")),
            ("model", json!("powerful")),
            ("system_prompt", Value::Null),
            ("tools", json!(["calculator"])),
            ("max_tool_iterations", json!(3)),
            ("parallel_tools", json!(false)),
            (
                "owner",
                json!({"team": "ops", "tags": ["finance", "q1, q2"],
                       "limits": [{"kind": "daily", "value": 100}, {"kind": "monthly", "value": 3000}]}),
            ),
            ("temperature", json!(0.3)),
            ("version", json!("1.2.0")),
        ]);
        let decoded = decode(EXAMPLE_C).unwrap();
        assert_eq!(decoded, expected);
        assert_eq!(decode(&EXAMPLE_C.replace('\n', "\r\n")).unwrap(), expected);
        // Re-encoding gives the same document (nested keys come out sorted).
        assert_eq!(decode(&encode(&decoded)).unwrap(), expected);
        assert!(encode(&decoded).contains("version: \"1.2.0\""));
    }

    #[test]
    fn check_encode() {
        let cases: &[(Vec<(String, Value)>, &str)] = &[
            (fields(&[("a", json!(1)), ("b", json!(-7))]), "a: 1\nb: -7"),
            (fields(&[("big", json!(u64::MAX))]), "big: 18446744073709551615"),
            (fields(&[("n", Value::Null), ("f", json!(true))]), "n: null\nf: true"),
            (fields(&[("tools", json!([]))]), "tools[0]:"),
            (fields(&[("k", json!(["a", "b c", "x,y", "", 1, null]))]), "k[6]: a,b c,\"x,y\",\"\",1,null"),
            (fields(&[("owner", json!({"team": "ops", "a": 1}))]), "owner:\n  a: 1\n  team: ops"),
            (fields(&[("o", json!({})), ("p", json!(1))]), "o:\np: 1"),
            (
                fields(&[("l", json!([{"kind": "daily", "value": 100}, {"kind": "monthly", "value": 3000}]))]),
                "l[2]{kind,value}:\n  daily,100\n  monthly,3000",
            ),
            (
                fields(&[("m", json!([1, {"a": 1, "b": [1, 2]}, [1, 2], {}, "x", [{"q": 1}, {"q": 2}]]))]),
                "m[6]:\n  - 1\n  - a: 1\n    b[2]: 1,2\n  - [2]: 1,2\n  -\n  - x\n  - [2]{q}:\n    1\n    2",
            ),
            (
                fields(&[("m", json!([{"a": {"b": 1}, "c": 2}, [[1], []]]))]),
                "m[2]:\n  - a:\n      b: 1\n    c: 2\n  - [2]:\n    - [1]: 1\n    - [0]:",
            ),
            (fields(&[("mixed", json!([{"a": 1}, {"b": 2}]))]), "mixed[2]:\n  - a: 1\n  - b: 2"),
            (
                fields(&[
                    ("my key", json!(1)),
                    ("a-b", json!(2)),
                    ("a.b", json!(3)),
                    ("é_1", json!(4)),
                    ("", json!(5)),
                ]),
                "\"my key\": 1\n\"a-b\": 2\na.b: 3\né_1: 4\n\"\": 5",
            ),
            (fields(&[("t", json!([{"a b": 1, "c": "x,y"}]))]), "t[1]{\"a b\",c}:\n  1,\"x,y\""),
            (vec![], ""),
        ];
        // Integral floats are written as integers, so they come back as integers.
        let floats = fields(&[("t", json!(0.3)), ("z", json!(-0.0)), ("e", json!(1.5e3)), ("s", json!(1e-7))]);
        assert_eq!(encode(&floats), "t: 0.3\nz: 0\ne: 1500\ns: 0.0000001");
        let back = fields(&[("t", json!(0.3)), ("z", json!(0)), ("e", json!(1500)), ("s", json!(1e-7))]);
        assert_eq!(decode(&encode(&floats)).unwrap(), back);
        for (doc, expected) in cases {
            assert_eq!(encode(doc), *expected, "encoding {doc:?}");
            assert_eq!(&decode(expected).unwrap(), doc, "decoding {expected:?}");
        }
    }

    #[test]
    fn check_quoting() {
        let cases = [
            ("", "\"\""),
            (" x", "\" x\""),
            ("x ", "\"x \""),
            ("true", "\"true\""),
            ("false", "\"false\""),
            ("null", "\"null\""),
            ("123", "\"123\""),
            ("-1.5", "\"-1.5\""),
            ("05", "\"05\""),
            ("1.5e3", "\"1.5e3\""),
            ("1.2.0", "\"1.2.0\""),
            ("a:b", "\"a:b\""),
            ("a,b", "\"a,b\""),
            ("-x", "\"-x\""),
            ("-", "\"-\""),
            ("a-b", "a-b"),
            ("toon-test-agent", "toon-test-agent"),
            ("llama-3.3-70b", "llama-3.3-70b"),
            ("2024-01-01", "2024-01-01"),
            ("x\ny", "\"x\\ny\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
            ("back\\slash", "\"back\\\\slash\""),
            ("[x]", "\"[x]\""),
            ("{x}", "\"{x}\""),
            ("a\tb", "\"a\\tb\""),
            ("a\rb", "\"a\\rb\""),
            ("hello world", "hello world"),
            ("é ü", "é ü"),
            ("|", "|"),
            ("#tag", "#tag"),
            ("1.", "\"1.\""),
            (".5", ".5"),
        ];
        for (text, expected) in cases {
            assert_eq!(encode_string(text), expected, "quoting {text:?}");
            let doc = fields(&[("v", json!(text))]);
            assert_eq!(decode(&encode(&doc)).unwrap(), doc, "round trip of {text:?}");
        }
    }

    #[test]
    fn check_decode() {
        let cases: &[(&str, Vec<(String, Value)>)] = &[
            ("", vec![]),
            ("  \n\n \r\n", vec![]),
            (
                "a: 1.5\nb: -0\nc: 05\nd: 1e3\ne: 1.0\nf: -05",
                fields(&[
                    ("a", json!(1.5)),
                    ("b", json!(0)),
                    ("c", json!("05")),
                    ("d", json!(1000)),
                    ("e", json!(1)),
                    ("f", json!("-05")),
                ]),
            ),
            ("a: 99999999999999999999", fields(&[("a", json!(1e20))])),
            ("a:   hello world  ", fields(&[("a", json!("hello world"))])),
            ("a: \"x\\ty\\\\\\\"\"", fields(&[("a", json!("x\ty\\\""))])),
            (
                "a: \"true\"\nb: true\nc: null\nd: \"\"",
                fields(&[("a", json!("true")), ("b", json!(true)), ("c", Value::Null), ("d", json!(""))]),
            ),
            ("a:\nb[0]:", fields(&[("a", json!({})), ("b", json!([]))])),
            ("a[3]: 1, \"x,y\" ,z", fields(&[("a", json!([1, "x,y", "z"]))])),
            ("a: 1\r\nb: 2\r\n", fields(&[("a", json!(1)), ("b", json!(2))])),
            ("a: 1\nb: 2\na: 3", fields(&[("a", json!(3)), ("b", json!(2))])),
            ("o:\n  k: 1\n  k: 2", fields(&[("o", json!({"k": 2}))])),
            ("\"quoted key\": 1\n\"k\"[1]: x", fields(&[("quoted key", json!(1)), ("k", json!(["x"]))])),
            ("a: |", fields(&[("a", json!("|"))])),
            ("url: http://x", fields(&[("url", json!("http://x"))])),
            ("\u{feff}a: 1", fields(&[("a", json!(1))])),
            ("a:\n\n  b: 1\n\nc: 2", fields(&[("a", json!({"b": 1})), ("c", json!(2))])),
            ("a[2]:\n  - x: 1\n    y: 2\n  - -3", fields(&[("a", json!([{"x": 1, "y": 2}, -3]))])),
            ("a[1]{x,y}:\n  \"p,q\",null", fields(&[("a", json!([{"x": "p,q", "y": null}]))])),
        ];
        for (text, expected) in cases {
            assert_eq!(&decode(text).unwrap(), expected, "decoding {text:?}");
        }
    }

    #[test]
    fn check_decode_errors() {
        let deep = (0..100).map(|level| format!("{}k{level}:", INDENT.repeat(level))).collect::<Vec<_>>().join("\n");
        let cases: &[(&str, usize, &str)] = &[
            // The invalid examples of §5.2 (a document without `model` decodes; the caller rejects it).
            ("this is not valid toon format\nmissing required fields", 2, "Multiple values at root level"),
            ("name: x\nmodel: y\ntools[2]: calculator", 3, "expected 2 items, found 1"),
            ("name: x\nsystem_prompt: |\n  You are a bot.\n  Be nice.", 2, "block scalars"),
            ("name: x\nowner:\n\tteam: ops", 3, "Tab"),
            ("{\"a\":1}", 1, "Expected key, found '{'"),
            ("name: x\nstray line", 2, "Multiple values at root level"),
            ("single bare line", 1, "root must be an object"),
            ("a:\n   b: 1", 2, "multiple of 2"),
            ("a: 1\n  b: 2", 2, "Unexpected indentation"),
            ("  a: 1", 1, "Unexpected indentation"),
            ("a:\n    b: 1", 2, "Unexpected indentation"),
            ("# comment\na: 1", 1, "Comments"),
            ("a:\n  # c", 2, "Comments"),
            ("a: \"bad \\x\"", 1, "Invalid escape"),
            ("a: \"open", 1, "Unterminated string"),
            ("a: \"x\" y", 1, "after closing quote"),
            ("a[2]:\n  - 1", 1, "expected 2 items, found 1"),
            ("a[1]:\n  - 1\n  - 2", 3, "found more"),
            ("a[1]:\n  x", 2, "list item"),
            ("a[2]{x,y}:\n  1,2\n  3", 3, "Expected 2 values in row, found 1"),
            ("a[1]{x}:\n  1\n  2", 3, "found more"),
            ("a[2]{x}:\n  1\nb: 2", 1, "expected 2 rows, found 1"),
            ("a[1]{x}: 1", 1, "after a tabular array header"),
            ("a[x]: 1", 1, "Invalid array length"),
            ("a[2|]: 1|2", 1, "Invalid array length"),
            ("a[99999999999999999999999]: 1", 1, "too large"),
            ("a[2: 1", 1, "missing ']'"),
            ("a[1]{x: 1", 1, "missing '}'"),
            ("a[1]{}:\n  1", 1, "Empty field name"),
            ("a[1]x: 1", 1, "Expected ':'"),
            ("- a: 1", 1, "Expected key, found '-'"),
            ("[2]: 1,2", 1, "Expected key, found '['"),
            ("a:\n  b", 2, "Expected `key: value`"),
            ("a{b}: 1", 1, "in unquoted key"),
            (": 1", 1, "Missing key"),
            ("a: 1e999", 1, "Number out of range"),
            (&deep, 65, "Nesting deeper than 64"),
        ];
        for (text, line, message) in cases {
            let error = decode(text).expect_err(text);
            assert_eq!(error.line, *line, "line for {text:?}: {error}");
            assert!(error.message.contains(message), "message for {text:?}: {error}");
        }
    }

    #[test]
    fn check_error_columns() {
        let cases = [("{\"a\":1}", 1), ("a:\n  \tb: 1", 3), ("a: \"bad \\x\"", 9), ("a[2]: x", 7), ("é: \"ü \\q\"", 7)];
        for (text, column) in cases {
            let error = decode(text).expect_err(text);
            assert_eq!(error.column, column, "column for {text:?}: {error}");
        }
        let error = decode("{\"a\":1}").unwrap_err();
        assert_eq!(error.to_string(), "Parse error at line 1, column 1: Expected key, found '{'");
    }

    #[test]
    fn very_deep_input_is_an_error_not_a_stack_overflow() {
        let deep = (0..5000).map(|level| format!("{}- [1]:", INDENT.repeat(level))).collect::<Vec<_>>().join("\n");
        let error = decode(&format!("a[1]:\n  {}", deep.replace('\n', "\n  "))).unwrap_err();
        assert!(error.message.contains("Nesting deeper than 64"), "{error}");
        // The same shape within the limit round-trips.
        let mut nested = json!([]);
        for _ in 0..30 {
            nested = json!([nested, 1]);
        }
        let doc = fields(&[("a", nested)]);
        assert_eq!(decode(&encode(&doc)).unwrap(), doc);
        let mut value = json!(1);
        for _ in 0..70 {
            value = json!({ "k": value });
        }
        assert!(decode(&encode(&fields(&[("root", value)]))).is_err());
    }

    fn text() -> BoxedStrategy<String> {
        prop_oneof![
            "\\PC{0,16}",
            "[ a-z0-9:,\"\\\\\n\r\t\\[\\]{}#|.é-]{0,12}",
            any::<String>(),
            "-?[0-9]{1,3}(\\.[0-9]{1,3})?([eE][+-]?[0-9])?",
            prop::sample::select(vec!["true", "false", "null", "-", "|", "- x", "a: b"]).prop_map(str::to_owned),
        ]
        .boxed()
    }

    fn key() -> BoxedStrategy<String> {
        prop_oneof![4 => "[a-zA-Z_][a-zA-Z0-9_.]{0,8}", 1 => text()].boxed()
    }

    fn leaf() -> BoxedStrategy<Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            // Integral floats come back as integers by design, so only non-integral ones round-trip.
            any::<f64>()
                .prop_filter("finite, non-integral", |f| f.is_finite() && f.fract() != 0.0)
                .prop_map(Value::from),
            text().prop_map(Value::String),
        ]
        .boxed()
    }

    fn table() -> BoxedStrategy<Value> {
        (prop::collection::btree_set(key(), 1..4), 1usize..4)
            .prop_flat_map(|(keys, rows)| {
                let width = keys.len();
                prop::collection::vec(prop::collection::vec(leaf(), width), rows).prop_map(move |rows| {
                    let rows = rows
                        .into_iter()
                        .map(|values| Value::Object(keys.iter().cloned().zip(values).collect::<Map<String, Value>>()));
                    Value::Array(rows.collect())
                })
            })
            .boxed()
    }

    fn value() -> BoxedStrategy<Value> {
        leaf()
            .prop_recursive(3, 48, 5, |inner| {
                prop_oneof![
                    prop::collection::vec(leaf(), 0..5).prop_map(Value::Array),
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::btree_map(key(), inner, 0..4)
                        .prop_map(|map| Value::Object(map.into_iter().collect())),
                    table(),
                ]
            })
            .boxed()
    }

    fn document() -> impl Strategy<Value = Vec<(String, Value)>> {
        prop::collection::vec((key(), value()), 0..6).prop_map(|pairs| {
            let mut seen = std::collections::HashSet::new();
            pairs.into_iter().filter(|(key, _)| seen.insert(key.clone())).collect()
        })
    }

    fn toonish() -> impl Strategy<Value = String> {
        let tokens = vec![
            "  ", "    ", "\t", "- ", "-", "key", "k2", ":", ": ", " ", "[", "]", "{", "}", ",", "\"", "\\", "\\n",
            "\n", "\r\n", "\r", "3", "0", "-1.5", "1e999", "|", "#", "null", "é", "\u{feff}", "[2]", "[0]", "[1]",
            "{a,b}", "\"q\"", "a,b", "true",
        ];
        prop::collection::vec(prop::sample::select(tokens), 0..60).prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn decode_inverts_encode(doc in document()) {
            let text = encode(&doc);
            prop_assert_eq!(decode(&text), Ok(doc), "text:\n{}", text);
        }

        #[test]
        fn decode_never_panics_on_arbitrary_text(text in "\\PC*") {
            let _ = decode(&text);
        }

        #[test]
        fn decode_never_panics_on_arbitrary_strings(text in any::<String>()) {
            let _ = decode(&text);
        }

        #[test]
        fn decode_never_panics_on_toonish_text(text in toonish()) {
            if let Err(error) = decode(&text) {
                prop_assert!(error.line >= 1 && error.column >= 1);
            }
        }
    }
}
