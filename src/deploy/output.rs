//! A deploy's output: stdout and stderr lines in arrival order, capped to the most recent bytes.

/// Appended lines, keeping at most `cap` bytes (the tail, cut at a line start).
#[derive(Debug, Clone)]
pub struct CappedOutput {
    text: String,
    cap: usize,
    truncated: bool,
    /// Lines ever appended (also those dropped), for event ordering.
    pub lines: u64,
}

const MARKER: &str = "[... earlier output truncated ...]\n";

impl CappedOutput {
    pub fn new(cap: usize) -> Self {
        CappedOutput { text: String::new(), cap: cap.max(MARKER.len() + 1), truncated: false, lines: 0 }
    }

    pub fn push_line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        self.lines += 1;
        let budget = self.cap - MARKER.len();
        if self.text.len() > budget {
            let mut cut = self.text.len() - budget;
            while !self.text.is_char_boundary(cut) {
                cut += 1;
            }
            // Prefer to cut at a line boundary so no line is shown half, unless that would drop
            // the newest line too: a line longer than the cap keeps its tail.
            let newest_line_start = self.text[..self.text.len() - 1].rfind('\n').map_or(0, |i| i + 1);
            if cut < newest_line_start
                && let Some(newline) = self.text[cut..].find('\n')
            {
                cut += newline + 1;
            }
            self.text.drain(..cut.min(self.text.len()));
            self.truncated = true;
        }
    }

    pub fn render(&self) -> String {
        if self.truncated { format!("{MARKER}{}", self.text) } else { self.text.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_tail_within_the_cap() {
        let mut out = CappedOutput::new(100);
        for i in 0..50 {
            out.push_line(&format!("line {i}"));
        }
        let text = out.render();
        assert!(text.len() <= 100, "{}", text.len());
        assert!(text.starts_with(MARKER));
        assert!(text.ends_with("line 49\n"));
        assert_eq!(out.lines, 50);
        let mut small = CappedOutput::new(100);
        small.push_line("hello");
        assert_eq!(small.render(), "hello\n");
    }

    #[test]
    fn a_line_longer_than_the_cap_keeps_its_tail() {
        let mut out = CappedOutput::new(100);
        out.push_line("before");
        let long: String = (0..300).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        out.push_line(&format!("{long}END"));
        let text = out.render();
        assert!(text.len() <= 100, "{}", text.len());
        assert!(text.starts_with(MARKER), "{text}");
        assert!(text.ends_with("END\n"), "{text}");
        assert!(text.len() > MARKER.len() + 50, "most of the budget is the tail: {text}");
        assert!(!text.contains("before"), "{text}");

        // Multi-byte characters are never split.
        let mut out = CappedOutput::new(100);
        out.push_line(&"é".repeat(200));
        assert!(out.render().ends_with("é\n"));
        // Older lines are still cut at a line start.
        out.push_line("next");
        assert_eq!(out.render(), format!("{MARKER}next\n"));
    }
}
