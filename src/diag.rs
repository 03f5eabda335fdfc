//! Diagnostics for configuration, rule and template files: `file:line:col: message`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in an operator-edited file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based line; 0 when the problem is about the file as a whole.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub col: usize,
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic about a whole file (missing, unreadable).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: 0,
            col: 0,
            message: message.into(),
        }
    }

    /// A diagnostic at a byte span of `source`, the text of `file`.
    pub fn at(file: &Path, source: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let (line, col) = line_col(source, span.start);
        Self {
            file: file.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }

    /// A TOML syntax or schema error, located where the toml crate says.
    pub fn from_toml(file: &Path, source: &str, err: &toml::de::Error) -> Self {
        // The toml crate's message is multi-line with a caret drawing; keep the first line.
        let message = err
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_string();
        match err.span() {
            Some(span) => Self::at(file, source, span, message),
            None => Self::file(file, message),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        if self.line == 0 {
            write!(f, "{file}: {}", self.message)
        } else {
            write!(f, "{file}:{}:{}: {}", self.line, self.col, self.message)
        }
    }
}

/// Where each line of a text starts, so that many offsets become line and column without
/// rescanning the text each time (a rule file of thousands of rules is located once per rule).
#[derive(Debug, Clone, Default)]
pub struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    pub fn new(source: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { starts }
    }

    /// As [`line_col`], for the text this was made from.
    pub fn line_col(&self, source: &str, at: usize) -> (usize, usize) {
        let at = at.min(source.len());
        let line = self.starts.partition_point(|&s| s <= at).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let col = source.get(start..at).map_or(0, |t| t.chars().count()) + 1;
        (line, col)
    }
}

/// Read an operator-edited file (`what`: "rule file", "template", ...) as text, refusing one
/// over `max` bytes: what is read is bounded even for a device or a pipe that never ends.
pub fn read_limited(path: &Path, what: &str, max: u64) -> Result<String, Diagnostic> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(|e| Diagnostic::file(path, format!("cannot read {what}: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(Diagnostic::file(
            path,
            format!(
                "{what} is larger than {} (the limit): split it, or keep what decides",
                if max >= 1 << 20 {
                    format!("{} MiB", max >> 20)
                } else {
                    format!("{} KiB", max >> 10)
                }
            ),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|e| Diagnostic::file(path, format!("cannot read {what}: not UTF-8 ({e})")))
}

/// 1-based line and column (in characters) of byte offset `at` in `source`.
pub fn line_col(source: &str, at: usize) -> (usize, usize) {
    let at = at.min(source.len());
    let before = source.get(..at).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 9), (2, 4));
    }

    #[test]
    fn line_index_agrees_with_line_col() {
        let src = "a = 1\nbb = \"é\"\n\nlast";
        let lines = Lines::new(src);
        for at in 0..=src.len() + 2 {
            if src.is_char_boundary(at.min(src.len())) {
                assert_eq!(lines.line_col(src, at), line_col(src, at), "at {at}");
            }
        }
    }

    #[test]
    fn display_is_file_line_col() {
        let d = Diagnostic::at(Path::new("x.toml"), "a\nbc", 3..4, "bad");
        assert_eq!(d.to_string(), "x.toml:2:2: bad");
        assert_eq!(
            Diagnostic::file(Path::new("y"), "gone").to_string(),
            "y: gone"
        );
    }
}
