//! Document chunking for `POST /api/rag/ingest`: four strategies that cut a document into
//! trimmed, non-empty pieces. Every chunk is a slice of the source text, so whitespace inside a
//! chunk is kept as written. Lengths are counted in chars (never bytes) and every cut falls on
//! a char boundary; all work is linear in the length of the text, so a 10 MB document chunks in
//! a few tens of milliseconds in a release build.

/// Target length of a `sentence` chunk, in chars: whole sentences are added while they fit.
const SENTENCE_TARGET_CHARS: usize = 500;
/// Longest chunk that `sentence` and `paragraph` produce, in chars. A longer sentence is cut at
/// word boundaries (and a longer word at char boundaries); a longer paragraph is cut by sentences.
const MAX_CHUNK_CHARS: usize = 2000;
/// Paragraphs shorter than this (headings, one-liners) are merged with the next one, in chars.
const SHORT_PARAGRAPH_CHARS: usize = 200;
/// `character` windows and their overlap, in chars.
const CHAR_WINDOW: usize = 500;
const CHAR_OVERLAP: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Fixed windows of `chunk_size` words overlapping by `chunk_overlap` words.
    Word,
    /// Whole sentences gathered up to ~500 chars.
    Sentence,
    /// Blank-line separated paragraphs; short ones merged forward, long ones cut by sentences.
    Paragraph,
    /// Windows of 500 chars overlapping by 100.
    Character,
}

impl Strategy {
    /// `word`/`words`/`fixed`; `sentence`/`sentences`/`semantic`; `paragraph`/`paragraphs`;
    /// `character`/`char`/`chars` (case-insensitive, trimmed). `None` for anything else.
    pub fn parse(name: &str) -> Option<Strategy> {
        match name.trim().to_ascii_lowercase().as_str() {
            "word" | "words" | "fixed" => Some(Strategy::Word),
            "sentence" | "sentences" | "semantic" => Some(Strategy::Sentence),
            "paragraph" | "paragraphs" => Some(Strategy::Paragraph),
            "character" | "char" | "chars" => Some(Strategy::Character),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Word => "word",
            Strategy::Sentence => "sentence",
            Strategy::Paragraph => "paragraph",
            Strategy::Character => "character",
        }
    }
}

/// Parameters of the `word` strategy (`[rag] chunk_size`/`chunk_overlap`), in words. Config
/// validation guarantees `0 < chunk_overlap < chunk_size`; other values are clamped, not trusted.
#[derive(Debug, Clone, Copy)]
pub struct ChunkingConfig {
    pub chunk_size: usize,
    pub chunk_overlap: usize,
}

impl Default for ChunkingConfig {
    fn default() -> Self {
        ChunkingConfig { chunk_size: 200, chunk_overlap: 50 }
    }
}

/// Cut `text` into chunks, in document order. Chunks are trimmed and never empty; a text with
/// no visible characters gives no chunk. Never panics, whatever the input.
pub fn chunk(text: &str, strategy: Strategy, config: &ChunkingConfig) -> Vec<String> {
    let spans = match strategy {
        Strategy::Word => word_chunks(text, config),
        Strategy::Sentence => {
            let mut out = Vec::new();
            sentence_chunks(text, 0, text.len(), SENTENCE_TARGET_CHARS, &mut out);
            out
        }
        Strategy::Paragraph => paragraph_chunks(text),
        Strategy::Character => character_chunks(text),
    };
    spans
        .into_iter()
        .filter_map(|(start, end)| text.get(start..end))
        .map(str::trim)
        .filter(|chunk| !chunk.is_empty())
        .map(str::to_string)
        .collect()
}

/// A byte range of the source text, always on char boundaries.
type Span = (usize, usize);

/// `text[start..end]` without surrounding whitespace, or `None` when nothing is left.
fn trimmed(text: &str, start: usize, end: usize) -> Option<Span> {
    let slice = text.get(start..end)?;
    let rest = slice.trim_start();
    let start = start + (slice.len() - rest.len());
    let end = start + rest.trim_end().len();
    (start < end).then_some((start, end))
}

fn char_len(text: &str, start: usize, end: usize) -> usize {
    text.get(start..end).map_or(0, |s| s.chars().count())
}

/// Byte offset (relative to `s`) of the `n`-th char of `s`, or `s.len()` if it has fewer.
fn nth_char_offset(s: &str, n: usize) -> usize {
    s.char_indices().nth(n).map_or(s.len(), |(offset, _)| offset)
}

/// The whitespace-separated words of `text[pos..]`, as spans of `text`.
struct Words<'a> {
    text: &'a str,
    pos: usize,
}

impl Iterator for Words<'_> {
    type Item = Span;

    fn next(&mut self) -> Option<Span> {
        let rest = self.text.get(self.pos..)?;
        let start = self.pos + rest.find(|c: char| !c.is_whitespace())?;
        let word = self.text.get(start..)?;
        let end = start + word.find(char::is_whitespace).unwrap_or(word.len());
        self.pos = end;
        Some((start, end))
    }
}

/// The words of `text[start..end]`.
fn words_in(text: &str, start: usize, end: usize) -> Words<'_> {
    Words { text: text.get(..end).unwrap_or(""), pos: start }
}

// ---------------------------------------------------------------- word

/// Windows of `chunk_size` words starting every `chunk_size - chunk_overlap` words. The last
/// window ends at the last word, and no window starts after one that already reached it, so a
/// tail is never repeated as a chunk of its own.
fn word_chunks(text: &str, config: &ChunkingConfig) -> Vec<Span> {
    let size = config.chunk_size.max(1);
    let step = size - config.chunk_overlap.min(size - 1);
    let words: Vec<Span> = words_in(text, 0, text.len()).collect();
    let mut out = Vec::with_capacity(words.len() / step + 1);
    let mut first = 0;
    while first < words.len() {
        let last = (first + size).min(words.len()) - 1;
        out.push((words[first].0, words[last].1));
        if last + 1 == words.len() {
            break;
        }
        first += step;
    }
    out
}

// ---------------------------------------------------------------- character

/// Windows of `CHAR_WINDOW` chars starting every `CHAR_WINDOW - CHAR_OVERLAP` chars; the last
/// window ends at the end of the text.
fn character_chunks(text: &str) -> Vec<Span> {
    let mut out = Vec::with_capacity(text.len() / (CHAR_WINDOW - CHAR_OVERLAP) + 1);
    let mut start = 0;
    while let Some(rest) = text.get(start..).filter(|rest| !rest.is_empty()) {
        let end = start + nth_char_offset(rest, CHAR_WINDOW);
        out.extend(trimmed(text, start, end));
        if end >= text.len() {
            break;
        }
        start += nth_char_offset(rest, CHAR_WINDOW - CHAR_OVERLAP);
    }
    out
}

// ---------------------------------------------------------------- sentence

/// Ends a sentence when followed by whitespace (or the end of the text).
fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '‼' | '⁇' | '⁈' | '⁉') || is_cjk_terminator(c)
}

/// Ends a sentence even with no space after it (CJK text has none between sentences).
fn is_cjk_terminator(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '｡')
}

/// Closing quotes and brackets that belong to the sentence they follow: `He said "no."`
fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '}' | '”' | '’' | '»' | '」' | '』' | '）')
}

/// Whether a line break at `newline` (the byte offset of a `\n`) starts a blank line.
fn blank_line_follows(s: &str, newline: usize) -> bool {
    let after = s.get(newline + 1..).unwrap_or("");
    after.trim_start_matches([' ', '\t', '\r']).starts_with('\n')
}

/// The sentences of `text[from..to]`, trimmed. A sentence ends after a terminator (with any
/// closing quotes) followed by whitespace, unless the next word starts in lower case (`e.g. this`);
/// after a CJK terminator; or at a blank line.
fn sentence_spans(text: &str, from: usize, to: usize) -> Vec<Span> {
    let Some(s) = text.get(from..to) else { return Vec::new() };
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let boundary = if is_terminator(c) {
            let mut end = i + c.len_utf8();
            let mut last = c;
            while let Some(&(j, d)) = chars.peek() {
                if !(is_terminator(d) || is_closer(d)) {
                    break;
                }
                end = j + d.len_utf8();
                last = d;
                chars.next();
            }
            match chars.peek() {
                None => Some(end),
                Some(_) if is_cjk_terminator(last) || is_cjk_terminator(c) => Some(end),
                Some(&(_, d)) if d.is_whitespace() => {
                    let abbreviation = c == '.'
                        && s.get(end..)
                            .and_then(|rest| rest.trim_start().chars().next())
                            .is_some_and(char::is_lowercase);
                    (!abbreviation).then_some(end)
                }
                Some(_) => None,
            }
        } else if c == '\n' && blank_line_follows(s, i) {
            Some(i)
        } else {
            None
        };
        if let Some(end) = boundary {
            out.extend(trimmed(text, from + start, from + end));
            start = end;
        }
    }
    out.extend(trimmed(text, from + start, to));
    out
}

/// Gather the sentences of `text[from..to]` into chunks of up to `target` chars. A sentence
/// longer than `target` is a chunk of its own; one longer than `MAX_CHUNK_CHARS` is cut at word
/// boundaries.
fn sentence_chunks(text: &str, from: usize, to: usize, target: usize, out: &mut Vec<Span>) {
    // (start, end, chars) of the chunk being gathered
    let mut current: Option<(usize, usize, usize)> = None;
    for (start, end) in sentence_spans(text, from, to) {
        let len = char_len(text, start, end);
        if len > MAX_CHUNK_CHARS {
            if let Some((s, e, _)) = current.take() {
                out.push((s, e));
            }
            split_at_words(text, start, end, MAX_CHUNK_CHARS, out);
            continue;
        }
        current = Some(extend(text, current, (start, end, len), target, out));
    }
    if let Some((s, e, _)) = current {
        out.push((s, e));
    }
}

/// Add the piece `(start, end, chars)` to the open chunk when the result stays within `limit`
/// chars (counting the text between them), else close the open chunk and start a new one.
fn extend(
    text: &str,
    open: Option<(usize, usize, usize)>,
    (start, end, chars): (usize, usize, usize),
    limit: usize,
    out: &mut Vec<Span>,
) -> (usize, usize, usize) {
    match open {
        None => (start, end, chars),
        Some((s, e, open_chars)) => {
            let merged = open_chars + char_len(text, e, start) + chars;
            if merged <= limit {
                (s, end, merged)
            } else {
                out.push((s, e));
                (start, end, chars)
            }
        }
    }
}

/// Cut `text[from..to]` into pieces of at most `max` chars at word boundaries; a word longer
/// than `max` is cut at char boundaries.
fn split_at_words(text: &str, from: usize, to: usize, max: usize, out: &mut Vec<Span>) {
    let mut current: Option<(usize, usize, usize)> = None;
    for (start, end) in words_in(text, from, to) {
        let len = char_len(text, start, end);
        if len > max {
            if let Some((s, e, _)) = current.take() {
                out.push((s, e));
            }
            let mut piece = start;
            while let Some(rest) = text.get(piece..end).filter(|rest| !rest.is_empty()) {
                let cut = piece + nth_char_offset(rest, max);
                out.push((piece, cut));
                piece = cut;
            }
            continue;
        }
        current = Some(extend(text, current, (start, end, len), max, out));
    }
    if let Some((s, e, _)) = current {
        out.push((s, e));
    }
}

// ---------------------------------------------------------------- paragraph

/// Paragraphs: runs of lines separated by blank (whitespace-only) lines, trimmed.
fn paragraph_spans(text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let mut paragraph: Option<(usize, usize)> = None;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let line_start = pos;
        pos += line.len();
        if line.trim().is_empty() {
            if let Some((start, end)) = paragraph.take() {
                out.extend(trimmed(text, start, end));
            }
        } else {
            let start = paragraph.map_or(line_start, |(start, _)| start);
            paragraph = Some((start, pos));
        }
    }
    if let Some((start, end)) = paragraph {
        out.extend(trimmed(text, start, end));
    }
    out
}

/// Paragraphs as chunks. A paragraph (or run of merged paragraphs) shorter than
/// `SHORT_PARAGRAPH_CHARS` takes in the next one, so a heading stays with its text; a trailing
/// short one joins the chunk before it when that stays within `MAX_CHUNK_CHARS`. A chunk longer
/// than `MAX_CHUNK_CHARS` is cut by sentences into pieces of about equal size.
fn paragraph_chunks(text: &str) -> Vec<Span> {
    // (span, chars, whether the chunk is whole paragraphs rather than a sentence cut)
    let mut out: Vec<(Span, usize, bool)> = Vec::new();
    let flush = |out: &mut Vec<(Span, usize, bool)>, (start, end, chars): (usize, usize, usize)| {
        if chars <= MAX_CHUNK_CHARS {
            out.push(((start, end), chars, true));
        } else {
            let pieces = chars.div_ceil(MAX_CHUNK_CHARS);
            let target = chars.div_ceil(pieces).max(SENTENCE_TARGET_CHARS);
            let mut spans = Vec::new();
            sentence_chunks(text, start, end, target, &mut spans);
            out.extend(spans.into_iter().map(|span| (span, char_len(text, span.0, span.1), false)));
        }
    };
    let mut pending: Option<(usize, usize, usize)> = None;
    for (start, end) in paragraph_spans(text) {
        let len = char_len(text, start, end);
        pending = match pending {
            None => Some((start, end, len)),
            Some((s, e, chars)) if chars < SHORT_PARAGRAPH_CHARS => {
                Some((s, end, chars + char_len(text, e, start) + len))
            }
            Some(done) => {
                flush(&mut out, done);
                Some((start, end, len))
            }
        };
    }
    if let Some((start, end, chars)) = pending {
        match out.last_mut() {
            Some(((_, last_end), last_chars, true))
                if chars < SHORT_PARAGRAPH_CHARS
                    && *last_chars + char_len(text, *last_end, start) + chars <= MAX_CHUNK_CHARS =>
            {
                *last_chars += char_len(text, *last_end, start) + chars;
                *last_end = end;
            }
            _ => flush(&mut out, (start, end, chars)),
        }
    }
    out.into_iter().map(|(span, _, _)| span).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy as _;
    use proptest::{prop_assert, prop_assert_eq, prop_assume, prop_oneof, proptest};

    fn words(n: usize) -> String {
        (0..n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
    }

    fn cfg(chunk_size: usize, chunk_overlap: usize) -> ChunkingConfig {
        ChunkingConfig { chunk_size, chunk_overlap }
    }

    fn sentence(i: usize, len: usize) -> String {
        // "S<i> xxxx ... ." of exactly `len` chars
        let head = format!("S{i} ");
        format!("{head}{}.", "x".repeat(len - head.len() - 1))
    }

    // ------------------------------------------------ names

    #[test]
    fn strategy_names_and_aliases() {
        for (name, strategy) in [
            ("word", Strategy::Word),
            ("words", Strategy::Word),
            ("fixed", Strategy::Word),
            ("sentence", Strategy::Sentence),
            ("sentences", Strategy::Sentence),
            ("semantic", Strategy::Sentence),
            ("paragraph", Strategy::Paragraph),
            ("paragraphs", Strategy::Paragraph),
            ("character", Strategy::Character),
            ("char", Strategy::Character),
            ("chars", Strategy::Character),
            ("  WORD ", Strategy::Word),
            ("Semantic", Strategy::Sentence),
            ("\tCHARS\n", Strategy::Character),
        ] {
            assert_eq!(Strategy::parse(name), Some(strategy), "{name:?}");
        }
        for bad in ["", "  ", "token", "words!", "para", "wörd", "characters"] {
            assert_eq!(Strategy::parse(bad), None, "{bad:?}");
        }
        for strategy in [Strategy::Word, Strategy::Sentence, Strategy::Paragraph, Strategy::Character] {
            assert_eq!(Strategy::parse(strategy.as_str()), Some(strategy));
        }
        assert_eq!(Strategy::Sentence.as_str(), "sentence");
        assert_eq!(Strategy::Character.as_str(), "character");
    }

    // ------------------------------------------------ empty input

    #[test]
    fn empty_and_blank_input_give_no_chunk() {
        for text in ["", " ", "\n\n\r\n", "\t \u{3000} \u{a0}\u{2028}", "\r\n \r\n"] {
            for strategy in [Strategy::Word, Strategy::Sentence, Strategy::Paragraph, Strategy::Character] {
                assert!(chunk(text, strategy, &ChunkingConfig::default()).is_empty(), "{strategy:?} {text:?}");
            }
        }
    }

    // ------------------------------------------------ word

    #[test]
    fn word_windows_overlap_and_cover_everything() {
        let text = words(500);
        let chunks = chunk(&text, Strategy::Word, &ChunkingConfig::default());
        // starts 0, 150, 300 (ends at 500): no window starts at 450
        assert_eq!(chunks.len(), 3);
        let split: Vec<Vec<&str>> = chunks.iter().map(|c| c.split(' ').collect()).collect();
        assert_eq!(split[0].len(), 200);
        assert_eq!(split[0][0], "w0");
        assert_eq!(split[1][0], "w150");
        assert_eq!(split[2][0], "w300");
        assert_eq!(split[2].last(), Some(&"w499"));
        assert_eq!(split[2].len(), 200);
        // the overlap is exactly 50 words
        assert_eq!(split[0][150..], split[1][..50]);
        assert_eq!(split[1][150..], split[2][..50]);
    }

    #[test]
    fn word_text_shorter_than_a_window_is_one_chunk() {
        let chunks = chunk("  just a few\nwords here  ", Strategy::Word, &ChunkingConfig::default());
        assert_eq!(chunks, ["just a few\nwords here"]);
        assert_eq!(chunk(&words(200), Strategy::Word, &ChunkingConfig::default()).len(), 1);
    }

    #[test]
    fn word_tail_is_not_repeated() {
        // 201 words: windows 0..200 and 150..201; nothing starting at 300
        let chunks = chunk(&words(201), Strategy::Word, &ChunkingConfig::default());
        assert_eq!(chunks.len(), 2);
        assert!(chunks[1].starts_with("w150 ") && chunks[1].ends_with(" w200"));
        // size 3 overlap 1 over 7 words: 0-2, 2-4, 4-6
        let chunks = chunk("a b c d e f g", Strategy::Word, &cfg(3, 1));
        assert_eq!(chunks, ["a b c", "c d e", "e f g"]);
        // 8 words: the last window is short rather than a repeat
        let chunks = chunk("a b c d e f g h", Strategy::Word, &cfg(3, 1));
        assert_eq!(chunks, ["a b c", "c d e", "e f g", "g h"]);
        // no overlap
        assert_eq!(chunk("a b c d e", Strategy::Word, &cfg(2, 0)), ["a b", "c d", "e"]);
    }

    #[test]
    fn word_keeps_the_original_whitespace_inside_a_chunk() {
        let chunks = chunk("a  b\r\nc\td e", Strategy::Word, &cfg(4, 1));
        assert_eq!(chunks, ["a  b\r\nc\td", "d e"]);
    }

    #[test]
    fn word_invalid_config_is_clamped_not_a_panic() {
        assert_eq!(chunk("a b c", Strategy::Word, &cfg(0, 0)), ["a", "b", "c"]);
        assert_eq!(chunk("a b c", Strategy::Word, &cfg(2, 5)), ["a b", "b c"]);
    }

    // ------------------------------------------------ sentence

    #[test]
    fn sentences_are_gathered_up_to_about_500_chars() {
        let sentences: Vec<String> = (0..10).map(|i| sentence(i, 120)).collect();
        let text = sentences.join(" ");
        let chunks = chunk(&text, Strategy::Sentence, &ChunkingConfig::default());
        // 4 sentences + 3 spaces = 483 chars fit, a fifth does not
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0], sentences[..4].join(" "));
        assert_eq!(chunks[1], sentences[4..8].join(" "));
        assert_eq!(chunks[2], sentences[8..].join(" "));
        assert!(chunks.iter().all(|c| c.chars().count() <= 500));
    }

    #[test]
    fn sentence_boundaries() {
        let text = "Is it? Yes! It is. \"Quoted.\" Then (aside.) Done… Next";
        let spans = sentence_spans(text, 0, text.len());
        let got: Vec<&str> = spans.iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(got, ["Is it?", "Yes!", "It is.", "\"Quoted.\"", "Then (aside.)", "Done…", "Next"]);
        // decimals, abbreviations before lower case, and no space: not boundaries
        let text = "Pi is 3.14 e.g. roughly. Visit example.com today.";
        let got: Vec<&str> = sentence_spans(text, 0, text.len()).iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(got, ["Pi is 3.14 e.g. roughly.", "Visit example.com today."]);
        // CJK terminators need no space; a blank line ends a sentence
        let text = "今日は晴れです。明日は雨です！\r\n\r\nheading\nmore text";
        let got: Vec<&str> = sentence_spans(text, 0, text.len()).iter().map(|&(s, e)| &text[s..e]).collect();
        assert_eq!(got, ["今日は晴れです。", "明日は雨です！", "heading\nmore text"]);
    }

    #[test]
    fn a_long_sentence_is_its_own_chunk() {
        let short = sentence(0, 100);
        let long = sentence(1, 900);
        let text = format!("{short} {long} {short}");
        let chunks = chunk(&text, Strategy::Sentence, &ChunkingConfig::default());
        assert_eq!(chunks, [short.clone(), long, short]);
    }

    #[test]
    fn a_huge_sentence_is_cut_at_word_boundaries() {
        let text = words(2000); // ~ 9000 chars, no terminator
        let chunks = chunk(&text, Strategy::Sentence, &ChunkingConfig::default());
        assert!(chunks.len() >= 5);
        assert!(chunks.iter().all(|c| c.chars().count() <= MAX_CHUNK_CHARS));
        // cut between words: rejoining restores the text exactly
        assert_eq!(chunks.join(" "), text);
        // a single enormous "word" is cut at char boundaries
        let blob = "é".repeat(4500);
        let chunks = chunk(&blob, Strategy::Sentence, &ChunkingConfig::default());
        assert_eq!(chunks.iter().map(|c| c.chars().count()).collect::<Vec<_>>(), [2000, 2000, 500]);
        assert_eq!(chunks.concat(), blob);
    }

    // ------------------------------------------------ paragraph

    #[test]
    fn paragraphs_split_on_blank_lines_and_short_ones_merge_forward() {
        let p1 = "p".repeat(300);
        let p2 = "q".repeat(250);
        let text = format!("# Heading\n\n{p1}\n\n\n{p2}\r\n  \r\nshort a\n\nshort b\n\n{p1}");
        let chunks = chunk(&text, Strategy::Paragraph, &ChunkingConfig::default());
        assert_eq!(chunks.len(), 3, "{chunks:#?}");
        assert_eq!(chunks[0], format!("# Heading\n\n{p1}"));
        assert_eq!(chunks[1], p2);
        assert_eq!(chunks[2], format!("short a\n\nshort b\n\n{p1}"));
    }

    #[test]
    fn a_trailing_short_paragraph_joins_the_previous_chunk() {
        let p = "p".repeat(300);
        let text = format!("{p}\n\nThanks.");
        assert_eq!(chunk(&text, Strategy::Paragraph, &ChunkingConfig::default()), vec![text]);
        // ... unless that would make it too long
        let big = format!("{} end.", "b".repeat(1990));
        let text = format!("{big}\n\nThanks.");
        assert_eq!(chunk(&text, Strategy::Paragraph, &ChunkingConfig::default()), [big, "Thanks.".to_string()]);
        // a document that is one short paragraph
        assert_eq!(chunk(" hi \n", Strategy::Paragraph, &ChunkingConfig::default()), ["hi"]);
    }

    #[test]
    fn a_long_paragraph_is_cut_by_sentences() {
        let sentences: Vec<String> = (0..30).map(|i| sentence(i, 150)).collect();
        let long = sentences.join(" "); // 4529 chars
        let text = format!("intro\n\n{long}\n\n{}", "z".repeat(400));
        let chunks = chunk(&text, Strategy::Paragraph, &ChunkingConfig::default());
        let last = chunks.last().cloned().unwrap_or_default();
        assert_eq!(last, "z".repeat(400));
        let cut = &chunks[..chunks.len() - 1];
        assert!(cut.len() >= 3, "{}", cut.len());
        assert!(cut[0].starts_with("intro\n\nS0 "));
        for piece in cut {
            assert!(piece.chars().count() <= MAX_CHUNK_CHARS);
            assert!(piece.ends_with('.'), "cut inside a sentence: {piece}");
        }
        assert_eq!(cut.join(" "), format!("intro\n\n{long}"));
    }

    // ------------------------------------------------ character

    #[test]
    fn character_windows_are_500_chars_overlapping_by_100() {
        let text: String = (0..1300).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let chunks = chunk(&text, Strategy::Character, &ChunkingConfig::default());
        // starts 0, 400, 800 (ends at 1300)
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0], text[..500]);
        assert_eq!(chunks[1], text[400..900]);
        assert_eq!(chunks[2], text[800..]);
        assert_eq!(chunks[0][400..], chunks[1][..100]);
        assert_eq!(chunk("short", Strategy::Character, &ChunkingConfig::default()), ["short"]);
    }

    #[test]
    fn character_windows_count_chars_not_bytes() {
        let text = "日本語🎉".repeat(300); // 1200 chars, 3900 bytes
        let chunks = chunk(&text, Strategy::Character, &ChunkingConfig::default());
        let lens: Vec<usize> = chunks.iter().map(|c| c.chars().count()).collect();
        assert_eq!(lens, [500, 500, 400]);
        let all: Vec<char> = text.chars().collect();
        assert_eq!(chunks[1], all[400..900].iter().collect::<String>());
    }

    // ------------------------------------------------ all strategies

    #[test]
    fn unicode_and_crlf_text_chunks_with_every_strategy() {
        let text = "Ünïcödé façade — naïve café. 🎉🎉 Emoji sentence! 中文句子。\r\n\r\nΔεύτερη παράγραφος; ещё текст.";
        for strategy in [Strategy::Word, Strategy::Sentence, Strategy::Paragraph, Strategy::Character] {
            let chunks = chunk(text, strategy, &cfg(4, 1));
            assert!(!chunks.is_empty(), "{strategy:?}");
            for c in &chunks {
                assert_eq!(c.trim(), c, "{strategy:?}");
                assert!(!c.is_empty());
                assert!(text.contains(c.as_str()), "{strategy:?}: {c:?} is not a slice of the text");
            }
        }
    }

    #[test]
    fn a_megabyte_chunks_in_linear_time() {
        // Not a benchmark (debug builds are slow); it only catches accidental quadratic work,
        // which would take minutes here.
        let paragraph = "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs! \
                         Ünïcödé façade 🎉 and more words here? Yes.\n\n";
        let text = paragraph.repeat(1_000_000 / paragraph.len());
        for strategy in [Strategy::Word, Strategy::Sentence, Strategy::Paragraph, Strategy::Character] {
            let started = std::time::Instant::now();
            let chunks = chunk(&text, strategy, &ChunkingConfig::default());
            assert!(!chunks.is_empty());
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "{strategy:?} is too slow");
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_chunks_are_trimmed_slices(
            text in "(\\PC|\\s|[.!?。\"”\\n\\r]){0,400}",
            size in 0usize..12,
            overlap in 0usize..14,
        ) {
            let config = cfg(size, overlap);
            for strategy in [Strategy::Word, Strategy::Sentence, Strategy::Paragraph, Strategy::Character] {
                for c in chunk(&text, strategy, &config) {
                    prop_assert!(!c.is_empty());
                    prop_assert_eq!(c.trim(), c.as_str());
                    prop_assert!(text.contains(c.as_str()));
                }
            }
        }

        #[test]
        fn word_chunks_cover_every_word_in_order(n in 1usize..60, size in 1usize..10, overlap in 0usize..10) {
            prop_assume!(overlap < size);
            let text = words(n);
            let chunks = chunk(&text, Strategy::Word, &cfg(size, overlap));
            let step = size - overlap;
            let mut rebuilt: Vec<String> = Vec::new();
            for (i, c) in chunks.iter().enumerate() {
                let ws: Vec<&str> = c.split(' ').collect();
                prop_assert!(ws.len() <= size);
                prop_assert_eq!(ws[0].to_string(), format!("w{}", i * step));
                let skip = if i == 0 { 0 } else { rebuilt.len() - i * step };
                rebuilt.extend(ws[skip..].iter().map(|w| w.to_string()));
            }
            prop_assert_eq!(rebuilt.join(" "), text);
            // the last chunk is not contained in the one before it
            if chunks.len() > 1 {
                prop_assert!(!chunks[chunks.len() - 2].ends_with(chunks[chunks.len() - 1].as_str()));
            }
        }
    }

    proptest! {
        // Long documents cost more per case, so fewer cases.
        #![proptest_config(proptest::test_runner::Config::with_cases(48))]

        #[test]
        fn long_texts_respect_the_size_limits(pieces in proptest::collection::vec(prop_oneof![
            20 => "[a-zé🎉]{1,12}",
            8 => "\\s{1,3}",
            4 => "[.!?。]",
            2 => "\r?\n\r?\n",
            1 => (1500usize..2600).prop_map(|n| "y".repeat(n)),
        ], 0..600)) {
            let text = pieces.concat();
            let limits = [
                (Strategy::Sentence, MAX_CHUNK_CHARS),
                (Strategy::Paragraph, MAX_CHUNK_CHARS),
                (Strategy::Character, CHAR_WINDOW),
            ];
            for (strategy, limit) in limits {
                let chunks = chunk(&text, strategy, &ChunkingConfig::default());
                prop_assert_eq!(chunks.is_empty(), text.trim().is_empty());
                for c in chunks {
                    prop_assert!(c.chars().count() <= limit, "{:?}: {} chars", strategy, c.chars().count());
                }
            }
        }
    }
}
