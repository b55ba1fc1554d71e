//! The Rust documentation every machine of this project has under the toolchain's
//! `share/doc/rust/html`: a real-text corpus for the RAG benchmarks.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `$(rustc --print sysroot)/share/doc/rust/html`.
pub fn html_root() -> PathBuf {
    let sysroot = Command::new("rustc").args(["--print", "sysroot"]).output().expect("run rustc --print sysroot");
    PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim()).join("share/doc/rust/html")
}

/// Text with tags removed and the common entities decoded.
pub fn plain(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every `.html` file under `dir`, recursively, in path order (print-all pages left out: they
/// repeat the chapters).
pub fn html_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for path in entries.filter_map(Result::ok).map(|e| e.path()) {
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|x| x == "html")
                && !path.file_name().is_some_and(|n| n == "print.html" || n == "toc.html")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The readable text of a page: its `<main>` when it has one.
pub fn page_text(html: &str) -> String {
    match (html.find("<main"), html.rfind("</main>")) {
        (Some(start), Some(end)) if start < end => plain(&html[start..end]),
        _ => plain(html),
    }
}
