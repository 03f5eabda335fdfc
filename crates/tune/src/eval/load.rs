//! Labelled rows from a CSV or JSONL file.
//!
//! Third-party data sets come in many shapes, so the loader is lenient about the encoding details
//! (UTF-8 BOM, CRLF, quoted multi-line cells, literal `\n` in cells, empty text cells) and strict
//! about everything that would silently corrupt labels: a row with the wrong number of fields, a
//! missing column, invalid JSON are errors naming `file:line`.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};

/// How the file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated, RFC 4180 quoting.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// Guesses the format from the extension (`.csv`; `.jsonl` or `.ndjson`), case-insensitively.
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("jsonl" | "ndjson") => Ok(Format::Jsonl),
            _ => bail!(
                "Cannot tell the format of {} from its extension; name the format (csv or jsonl)",
                path.display()
            ),
        }
    }
}

impl FromStr for Format {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Format> {
        match s {
            "csv" => Ok(Format::Csv),
            "jsonl" | "ndjson" => Ok(Format::Jsonl),
            other => bail!("Unknown format `{other}`; expected csv or jsonl"),
        }
    }
}

/// Whether the first CSV record names the columns. Ignored for JSONL (fields have names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderMode {
    /// Required if any column is addressed by name; otherwise sniffed from the first rows
    /// (a column of numbers under names, or a label column whose first value never recurs, says
    /// "header"). The guess is reported back in [`Dataset::header`].
    #[default]
    Auto,
    Present,
    Absent,
}

impl FromStr for HeaderMode {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<HeaderMode> {
        match s {
            "auto" => Ok(HeaderMode::Auto),
            "present" | "yes" => Ok(HeaderMode::Present),
            "absent" | "no" => Ok(HeaderMode::Absent),
            other => bail!("Unknown header mode `{other}`; expected auto, present or absent"),
        }
    }
}

/// Where the labelled data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub path: PathBuf,
    pub format: Format,
    pub header: HeaderMode,
}

impl Source {
    /// Format from the extension, header detected automatically.
    pub fn from_path(path: impl Into<PathBuf>) -> Result<Source> {
        let path = path.into();
        Ok(Source {
            format: Format::from_path(&path)?,
            path,
            header: HeaderMode::Auto,
        })
    }
}

/// Which columns (CSV header names, JSON field names, or 0-based CSV indices such as `"1"`) to
/// read. A name that matches a header cell wins over its reading as an index.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Columns {
    /// Text columns, e.g. `["subject", "body"]`; [`Row::texts`] keeps this order.
    pub text: Vec<String>,
    pub label: String,
    /// Keep only rows whose column equals the value (after trimming the cell), e.g.
    /// `("language", "en")`. Several filters must all hold.
    pub filter: Vec<(String, String)>,
    /// Keep one part of a seeded split of the rows (after filtering): train on one, test on the
    /// other (`--part`).
    pub split: Option<Split>,
}

/// Which part of a split to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Train,
    Test,
}

impl std::str::FromStr for Part {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Part> {
        match s {
            "train" => Ok(Part::Train),
            "test" => Ok(Part::Test),
            other => bail!("--part is train or test, not {other:?}"),
        }
    }
}

/// A seeded split of rows into a train and a test part: every row is in exactly one, by a hash
/// of its position among the rows kept by the filter and the seed, so the same file, filter and
/// seed always give the same parts, whatever the labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Split {
    pub part: Part,
    /// Share of rows in the test part, in (0, 1).
    pub test_share: f64,
    pub seed: u64,
}

impl Split {
    /// Whether the row at `index` (0-based, among the filtered rows) is in the test part.
    pub fn is_test(&self, index: usize) -> bool {
        // splitmix64 of (seed, index): well mixed, so neighbouring rows fall apart.
        let mut z = self
            .seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(index as u64)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) < self.test_share
    }

    /// Keep the rows of this part; returns how many were left out.
    pub fn apply<T>(&self, rows: &mut Vec<T>) -> usize {
        let before = rows.len();
        let mut i = 0;
        rows.retain(|_| {
            let keep = self.is_test(i) == (self.part == Part::Test);
            i += 1;
            keep
        });
        before - rows.len()
    }
}

impl Columns {
    /// Columns from string slices, for tests.
    #[cfg(test)]
    pub(crate) fn of(text: &[&str], label: &str, filter: &[(&str, &str)]) -> Columns {
        Columns {
            text: text.iter().map(|s| s.to_string()).collect(),
            label: label.into(),
            filter: filter
                .iter()
                .map(|(c, v)| (c.to_string(), v.to_string()))
                .collect(),
            split: None,
        }
    }

    /// Parses one `column=value` filter as given on the command line.
    pub fn parse_filter(s: &str) -> Result<(String, String)> {
        match s.split_once('=') {
            Some((col, value)) if !col.trim().is_empty() => {
                Ok((col.trim().to_string(), value.trim().to_string()))
            }
            _ => bail!("Filter `{s}`: expected column=value, e.g. language=en"),
        }
    }

    fn all_specs(&self) -> impl Iterator<Item = &str> {
        self.text
            .iter()
            .chain(std::iter::once(&self.label))
            .chain(self.filter.iter().map(|(c, _)| c))
            .map(String::as_str)
    }
}

/// One labelled example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based line where the record starts in the file, for error messages and for finding the
    /// row again (a multi-line cell makes this differ from the record number).
    pub line: usize,
    /// Cells of [`Columns::text`], in that order; literal `\n` already turned into newlines.
    pub texts: Vec<String>,
    /// Gold label, trimmed; never empty.
    pub label: String,
}

/// What [`load`] read, with the counts of rows it left out so the caller can report them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dataset {
    /// The header cells if the file has a header row (detected or declared); `None` for a
    /// header-less CSV and for JSONL.
    pub header: Option<Vec<String>>,
    pub rows: Vec<Row>,
    /// Rows dropped by [`Columns::filter`].
    pub filtered_out: usize,
    /// Rows that passed the filter but have an empty label: they cannot be scored against
    /// anything, and failing the whole file over them would make some public data sets unusable.
    pub unlabelled: usize,
    /// Rows in the other part of [`Columns::split`].
    pub other_part: usize,
}

/// Reads every row of `source`, keeping the columns named in `cols`.
///
/// Errors are one line each: the file cannot be opened, a column is missing (with the available
/// ones), or a row is malformed (`file:line: what is wrong`).
pub fn load(source: &Source, cols: &Columns) -> Result<Dataset> {
    if cols.text.is_empty() {
        bail!("No text columns given; name at least one (e.g. subject,body)");
    }
    let mut data = match source.format {
        Format::Csv => load_csv(source, cols),
        Format::Jsonl => load_jsonl(&source.path, cols),
    }?;
    if let Some(split) = &cols.split {
        if !(split.test_share > 0.0 && split.test_share < 1.0) {
            bail!(
                "--test-share must be between 0 and 1, not {}",
                split.test_share
            );
        }
        data.other_part = split.apply(&mut data.rows);
    }
    Ok(data)
}

/// How many records after the first are looked at to decide whether the first is a header.
const SNIFF_ROWS: usize = 20;

fn load_csv(source: &Source, cols: &Columns) -> Result<Dataset> {
    let path = &source.path;
    // Read whole: evaluation files are small, and line numbers are computed from the bytes.
    let bytes = std::fs::read(path).with_context(|| format!("Reading {}", path.display()))?;
    let lines = LineIndex::new(&bytes);
    // Headers are handled here rather than by the csv crate because they may be absent; the csv
    // crate still checks that every record has as many fields as the first and strips a BOM.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&bytes[..]);
    let mut records = reader
        .records()
        .map(|r| r.map_err(|e| csv_error(path, &lines, e)));
    let sample = records
        .by_ref()
        .take(SNIFF_ROWS + 1)
        .collect::<Result<Vec<_>>>()?;
    let Some(first) = sample.first() else {
        bail!("{} is empty", path.display());
    };
    let has_header = match source.header {
        HeaderMode::Present => true,
        HeaderMode::Absent => false,
        // A column name only means something if the first row names the columns.
        HeaderMode::Auto if cols.all_specs().any(|s| s.parse::<usize>().is_err()) => true,
        HeaderMode::Auto => {
            let label_index = cols.label.parse::<usize>().ok();
            sniff_header(&sample, label_index)
        }
    };
    let header: Option<Vec<String>> =
        has_header.then(|| first.iter().map(|c| c.trim().to_string()).collect());
    let width = first.len();
    let resolve = |spec: &str| resolve_column(spec, header.as_deref(), width, source);
    let text_idx = cols
        .text
        .iter()
        .map(|s| resolve(s))
        .collect::<Result<Vec<_>>>()?;
    let label_idx = resolve(&cols.label)?;
    let filter_idx = cols
        .filter
        .iter()
        .map(|(c, v)| Ok((resolve(c)?, v.as_str())))
        .collect::<Result<Vec<_>>>()?;

    let mut data = Dataset {
        header: header.clone(),
        ..Dataset::default()
    };
    let body = sample
        .into_iter()
        .skip(usize::from(has_header))
        .map(Ok)
        .chain(records);
    for record in body {
        let record = record?;
        let cell = |i: usize| record.get(i).unwrap_or_default();
        if !filter_idx.iter().all(|&(i, value)| cell(i).trim() == value) {
            data.filtered_out += 1;
            continue;
        }
        let label = cell(label_idx).trim();
        if label.is_empty() {
            data.unlabelled += 1;
            continue;
        }
        let line = record.position().map_or(0, |p| lines.line_at(p.byte()));
        data.rows.push(Row {
            line,
            texts: text_idx.iter().map(|&i| unescape(cell(i))).collect(),
            label: label.to_string(),
        });
    }
    Ok(data)
}

/// Maps a column spec to an index: a header name first, then a 0-based index.
fn resolve_column(
    spec: &str,
    header: Option<&[String]>,
    width: usize,
    source: &Source,
) -> Result<usize> {
    let path = source.path.display();
    let last = width.saturating_sub(1);
    if let Some(names) = header {
        if let Some(i) = names.iter().position(|n| n == spec) {
            return Ok(i);
        }
        if let Ok(i) = spec.parse::<usize>()
            && i < width
        {
            return Ok(i);
        }
        let hint = if source.header == HeaderMode::Auto {
            format!(" (if the file has no header row, address columns by 0-based index 0..={last})")
        } else {
            String::new()
        };
        bail!(
            "Column `{spec}` not found in {path}; available: {}{hint}",
            names.join(", ")
        );
    }
    match spec.parse::<usize>() {
        Ok(i) if i < width => Ok(i),
        Ok(i) => {
            bail!("Column {i} is out of range in {path}: rows have {width} fields (0..={last})")
        }
        Err(_) => bail!(
            "Column `{spec}` not found: {path} has no header row, so address columns by 0-based index 0..={last}"
        ),
    }
}

/// Guesses whether the first record is a header, from up to [`SNIFF_ROWS`] records after it.
///
/// A header cell is never empty, never a number, and never repeated. Beyond that the first row
/// must look unlike the rest: each column that holds only numbers below it votes "header"; the
/// label column votes "no header" if its first value recurs below, and "header" if it does not
/// while the column repeats values (labels are categorical). A file whose columns are all text
/// and whose label column gives no evidence is read as header-less: declare the header then.
fn sniff_header(sample: &[csv::StringRecord], label_index: Option<usize>) -> bool {
    let Some((first, rest)) = sample.split_first() else {
        return false;
    };
    let names: Vec<&str> = first.iter().map(str::trim).collect();
    let distinct: BTreeSet<&str> = names.iter().copied().collect();
    if distinct.len() != names.len() || names.iter().any(|n| n.is_empty() || looks_numeric(n)) {
        return false;
    }
    let mut votes = 0i32;
    for (col, name) in names.iter().enumerate() {
        let values: Vec<&str> = rest
            .iter()
            .filter_map(|r| r.get(col))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            continue;
        }
        if values.iter().all(|v| looks_numeric(v)) {
            votes += 1;
        } else if Some(col) == label_index {
            let kinds: BTreeSet<&str> = values.iter().copied().collect();
            if kinds.contains(name) {
                votes -= 1;
            } else if kinds.len() * 2 <= values.len() {
                votes += 1;
            }
        }
    }
    votes > 0
}

/// A number as spreadsheets write them (`3`, `-0.5`, `5.70306E+17`); not `inf` or `NaN`, which
/// are more likely words.
fn looks_numeric(s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit()) && s.parse::<f64>().is_ok()
}

/// Turns literal `\n` (and `\r\n`) into newlines: some exports flatten multi-line text that way,
/// and the rules look for phrases at line starts. A genuine backslash-n (a Windows path) is
/// rare in mail text and costs at most a phrase match.
fn unescape(cell: &str) -> String {
    if cell.contains("\\n") {
        cell.replace("\\r\\n", "\n").replace("\\n", "\n")
    } else {
        cell.to_string()
    }
}

/// 1-based line numbers from byte offsets.
///
/// The csv crate's `Position::line` is wrong after CRLF terminators and after blank lines
/// (BurntSushi/rust-csv#395, #208), and the data sets here use CRLF. Its byte offset is reliable
/// but points just past the previous record's first terminator byte, so a record starts at the
/// first byte from there on that is not a line break (the csv crate skips blank lines).
struct LineIndex<'a> {
    data: &'a [u8],
    newlines: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(data: &'a [u8]) -> LineIndex<'a> {
        // A lone `\r` ends a line too (old Mac files), as it ends a record for the csv crate.
        let newlines = data
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && data.get(i + 1) != Some(&b'\n')))
            .map(|(i, _)| i)
            .collect();
        LineIndex { data, newlines }
    }

    fn line_at(&self, byte: u64) -> usize {
        let mut start = usize::try_from(byte).map_or(self.data.len(), |b| b.min(self.data.len()));
        while matches!(self.data.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        self.newlines.partition_point(|&nl| nl < start) + 1
    }
}

/// A csv error as one line that names the file and line.
fn csv_error(path: &Path, lines: &LineIndex<'_>, err: csv::Error) -> anyhow::Error {
    let line = err
        .position()
        .map_or_else(|| "?".to_string(), |p| lines.line_at(p.byte()).to_string());
    let path = path.display();
    match err.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => anyhow!(
            "{path}:{line}: row has {len} fields but the first row has {expected_len} (an unbalanced quote can cause this)"
        ),
        csv::ErrorKind::Utf8 { err, .. } => anyhow!(
            "{path}:{line}: field {} is not valid UTF-8; convert the file to UTF-8",
            err.field() + 1
        ),
        _ => anyhow!("{path}:{line}: {err}"),
    }
}

fn load_jsonl(path: &Path, cols: &Columns) -> Result<Dataset> {
    let file = File::open(path).with_context(|| format!("Opening {}", path.display()))?;
    let shown = path.display();
    let mut data = Dataset::default();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let lineno = i + 1;
        let line = line.map_err(|e| anyhow!("{shown}:{lineno}: {e}"))?;
        let text = if i == 0 {
            line.strip_prefix('\u{feff}').unwrap_or(&line)
        } else {
            &line
        };
        // A blank line (often the last one) holds no row.
        if text.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| anyhow!("{shown}:{lineno}: not valid JSON: {e}"))?;
        let serde_json::Value::Object(object) = value else {
            bail!("{shown}:{lineno}: expected a JSON object, found {value}");
        };
        let field = |name: &str| -> Result<String> {
            match object.get(name) {
                Some(v) => Ok(stringify(v)),
                None => {
                    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
                    bail!(
                        "{shown}:{lineno}: field `{name}` missing; this object has: {}",
                        keys.join(", ")
                    )
                }
            }
        };
        let mut keep = true;
        for (name, value) in &cols.filter {
            keep &= field(name)?.trim() == value;
        }
        if !keep {
            data.filtered_out += 1;
            continue;
        }
        let label = field(&cols.label)?.trim().to_string();
        if label.is_empty() {
            data.unlabelled += 1;
            continue;
        }
        let texts = cols
            .text
            .iter()
            .map(|name| field(name).map(|t| unescape(&t)))
            .collect::<Result<Vec<_>>>()?;
        data.rows.push(Row {
            line: lineno,
            texts,
            label,
        });
    }
    Ok(data)
}

/// JSON values as the text a CSV cell would hold: strings as is, `null` as empty (a missing
/// value), numbers and booleans as written, arrays and objects as compact JSON.
fn stringify(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(text: &[&str], label: &str, filter: &[(&str, &str)]) -> Columns {
        Columns::of(text, label, filter)
    }

    #[test]
    fn a_split_is_disjoint_covering_and_stable() {
        let split = |part, seed| Split {
            part,
            test_share: 0.3,
            seed,
        };
        let rows: Vec<usize> = (0..10_000).collect();
        let (mut train, mut test) = (rows.clone(), rows.clone());
        split(Part::Train, 1).apply(&mut train);
        split(Part::Test, 1).apply(&mut test);
        assert_eq!(train.len() + test.len(), rows.len());
        assert!(train.iter().all(|r| !test.contains(r)));
        assert!((2_800..3_200).contains(&test.len()), "{}", test.len());
        let mut again = rows.clone();
        split(Part::Test, 1).apply(&mut again);
        assert_eq!(again, test);
        let mut other_seed = rows.clone();
        split(Part::Test, 2).apply(&mut other_seed);
        assert_ne!(other_seed, test);
        assert!("valid".parse::<Part>().is_err());
    }

    /// Writes `content` to a temporary file with the given extension and loads it.
    fn load_str(
        ext: &str,
        header: HeaderMode,
        content: &[u8],
        cols: &Columns,
    ) -> (tempfile::TempDir, Result<Dataset>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(format!("data.{ext}"));
        std::fs::write(&path, content).expect("write");
        let mut source = Source::from_path(&path).expect("source");
        source.header = header;
        let result = load(&source, cols);
        (dir, result)
    }

    fn texts_labels(data: &Dataset) -> Vec<(Vec<&str>, &str)> {
        data.rows
            .iter()
            .map(|r| {
                (
                    r.texts.iter().map(String::as_str).collect(),
                    r.label.as_str(),
                )
            })
            .collect()
    }

    #[test]
    fn csv_with_bom_crlf_quoted_multiline_literal_newline_and_empty_subject() {
        let content = "\u{feff}subject,body,priority\r\n\
                       Server down,\"line one\r\nline two\",high\r\n\
                       ,no subject here,low\r\n\
                       Hi,Dear team\\n\\nplease help\\r\\nthanks,medium\r\n";
        let (_d, data) = load_str(
            "csv",
            HeaderMode::Auto,
            content.as_bytes(),
            &cols(&["subject", "body"], "priority", &[]),
        );
        let data = data.expect("loads");
        assert_eq!(
            data.header.as_deref(),
            Some(&["subject".to_string(), "body".into(), "priority".into()][..]),
            "BOM must not stick to the first header name"
        );
        assert_eq!(
            texts_labels(&data),
            vec![
                (vec!["Server down", "line one\r\nline two"], "high"),
                (vec!["", "no subject here"], "low"),
                (vec!["Hi", "Dear team\n\nplease help\nthanks"], "medium"),
            ]
        );
        // The multi-line cell spans lines 2-3, so the next record starts on line 4.
        let lines: Vec<usize> = data.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![2, 4, 5]);
    }

    #[test]
    fn line_numbers_survive_crlf_and_blank_lines() {
        // Regression: the csv crate's own line numbers lag behind after CRLF and blank lines.
        let cases: [(&str, &[usize]); 6] = [
            ("a,b\nc,d\ne,f\n", &[1, 2, 3]),
            ("a,b\r\nc,d\r\ne,f\r\n", &[1, 2, 3]),
            ("\u{feff}a,b\r\nc,d\r\n", &[1, 2]),
            ("a,b\r\n\"c\r\nx\",d\r\ne,f\r\n", &[1, 2, 4]),
            ("a,b\n\n\nc,d\r\n\r\ne,f", &[1, 4, 6]),
            ("a,b\rc,d\re,f", &[1, 2, 3]),
        ];
        for (content, expected) in cases {
            let (_d, data) = load_str(
                "csv",
                HeaderMode::Absent,
                content.as_bytes(),
                &cols(&["0"], "1", &[]),
            );
            let lines: Vec<usize> = data.expect("loads").rows.iter().map(|r| r.line).collect();
            assert_eq!(lines, expected, "{content:?}");
        }
        // The same holds for the line named in an error.
        let (_d, result) = load_str(
            "csv",
            HeaderMode::Absent,
            b"a,b\r\nc,d\r\ne\r\n",
            &cols(&["0"], "1", &[]),
        );
        let err = format!("{:#}", result.expect_err("short row"));
        assert!(err.contains("data.csv:3: row has 1 fields"), "{err}");
    }

    #[test]
    fn filter_keeps_matching_rows_and_counts_the_rest() {
        let content = "subject,priority,language\na,high,en\nb,low,de\nc,,en\nd,low, en \n";
        let (_d, data) = load_str(
            "csv",
            HeaderMode::Auto,
            content.as_bytes(),
            &cols(&["subject"], "priority", &[("language", "en")]),
        );
        let data = data.expect("loads");
        assert_eq!(
            texts_labels(&data),
            vec![(vec!["a"], "high"), (vec!["d"], "low")]
        );
        assert_eq!((data.filtered_out, data.unlabelled), (1, 1));
    }

    #[test]
    fn headerless_csv_is_addressed_by_index() {
        let content = "101,@Help my order never came,1,retail\n102,thanks a lot,0,retail\n";
        let (_d, data) = load_str(
            "csv",
            HeaderMode::Auto,
            content.as_bytes(),
            &cols(&["1"], "2", &[("3", "retail")]),
        );
        let data = data.expect("loads");
        assert_eq!(data.header, None);
        assert_eq!(
            texts_labels(&data),
            vec![
                (vec!["@Help my order never came"], "1"),
                (vec!["thanks a lot"], "0")
            ]
        );
    }

    #[test]
    fn header_detection() {
        struct Case {
            name: &'static str,
            content: &'static str,
            mode: HeaderMode,
            columns: Columns,
            header: bool,
        }
        let by_index = cols(&["0"], "1", &[]);
        let cases = [
            Case {
                name: "numeric first row: no header",
                content: "1,hello,0\n2,world,1\n",
                mode: HeaderMode::Auto,
                columns: cols(&["1"], "2", &[]),
                header: false,
            },
            Case {
                name: "names above a numeric column: header",
                content: "id,text,label\n1,hello,a\n2,world,b\n",
                mode: HeaderMode::Auto,
                columns: cols(&["1"], "2", &[]),
                header: true,
            },
            Case {
                name: "all text, first label recurs below: no header",
                content: "great service,ham\nbuy now,spam\ncheap pills,spam\nhello,ham\n",
                mode: HeaderMode::Auto,
                columns: by_index.clone(),
                header: false,
            },
            Case {
                name: "all text, first label absent from a categorical column: header",
                content: "text,sentiment\ngreat,pos\nawful,neg\nbad,neg\nfine,pos\n",
                mode: HeaderMode::Auto,
                columns: by_index.clone(),
                header: true,
            },
            Case {
                name: "repeated cell cannot be a header",
                content: "x,x,1\ny,z,1\n",
                mode: HeaderMode::Auto,
                columns: cols(&["0"], "2", &[]),
                header: false,
            },
            Case {
                name: "a column name forces a header",
                content: "great service,ham\nbuy now,spam\n",
                mode: HeaderMode::Auto,
                columns: cols(&["great service"], "ham", &[]),
                header: true,
            },
            Case {
                name: "declared present overrides the sniffer",
                content: "1,hello,0\n2,world,1\n",
                mode: HeaderMode::Present,
                columns: cols(&["1"], "2", &[]),
                header: true,
            },
            Case {
                name: "declared absent overrides the sniffer",
                content: "id,text,label\n1,hello,a\n",
                mode: HeaderMode::Absent,
                columns: cols(&["1"], "2", &[]),
                header: false,
            },
        ];
        for case in cases {
            let (_d, data) = load_str("csv", case.mode, case.content.as_bytes(), &case.columns);
            let data = data.unwrap_or_else(|e| panic!("{}: {e:#}", case.name));
            assert_eq!(data.header.is_some(), case.header, "{}", case.name);
            let first_line = if case.header { 2 } else { 1 };
            assert_eq!(
                data.rows.first().map(|r| r.line),
                Some(first_line),
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn errors_name_the_column_or_the_line() {
        let cases: [(&str, &str, &str, Columns, &str); 5] = [
            (
                "csv",
                "subject,body,priority\na,b,high\n",
                "missing column lists the available ones",
                cols(&["subject"], "priorty", &[]),
                "Column `priorty` not found in ",
            ),
            (
                "csv",
                "subject,body,priority\na,b,high\n",
                "available names",
                cols(&["subject"], "priorty", &[]),
                "available: subject, body, priority",
            ),
            (
                "csv",
                "subject,body,priority\na,b,high\nc,\"d,high\ne,f,low\n",
                "unequal row length names the line",
                cols(&["subject"], "priority", &[]),
                "data.csv:3: row has 2 fields but the first row has 3",
            ),
            (
                "csv",
                "1,hello,0\n",
                "index out of range",
                cols(&["1"], "7", &[]),
                "Column 7 is out of range",
            ),
            (
                "jsonl",
                "{\"subject\":\"a\",\"label\":\"x\"}\n{\"subject\":\"b\"}\n",
                "missing JSON field names the line and keys",
                cols(&["subject"], "label", &[]),
                "data.jsonl:2: field `label` missing; this object has: subject",
            ),
        ];
        for (ext, content, name, columns, expected) in cases {
            let (_d, result) = load_str(ext, HeaderMode::Auto, content.as_bytes(), &columns);
            let err = format!("{:#}", result.expect_err(name));
            assert!(err.contains(expected), "{name}: got `{err}`");
            assert!(!err.contains('\n'), "{name}: one line, got `{err}`");
        }
    }

    #[test]
    fn headerless_file_addressed_by_name_says_to_use_indices() {
        let (_d, result) = load_str(
            "csv",
            HeaderMode::Absent,
            b"1,hello,0\n",
            &cols(&["text"], "2", &[]),
        );
        let err = format!("{:#}", result.expect_err("name without header"));
        assert!(err.contains("has no header row"), "{err}");
        assert!(err.contains("0..=2"), "{err}");
    }

    #[test]
    fn invalid_utf8_and_bad_json_name_the_line() {
        let (_d, result) = load_str(
            "csv",
            HeaderMode::Absent,
            b"a,x\nb\xff,y\n",
            &cols(&["0"], "1", &[]),
        );
        let err = format!("{:#}", result.expect_err("invalid UTF-8"));
        assert!(
            err.contains("data.csv:2: field 1 is not valid UTF-8"),
            "{err}"
        );

        let (_d, result) = load_str(
            "jsonl",
            HeaderMode::Auto,
            b"{\"t\":\"a\",\"l\":\"x\"}\n{\"t\": oops}\n",
            &cols(&["t"], "l", &[]),
        );
        let err = format!("{:#}", result.expect_err("bad JSON"));
        assert!(err.contains("data.jsonl:2: not valid JSON"), "{err}");

        let (_d, result) = load_str(
            "jsonl",
            HeaderMode::Auto,
            b"[1, 2]\n",
            &cols(&["t"], "l", &[]),
        );
        let err = format!("{:#}", result.expect_err("not an object"));
        assert!(
            err.contains("data.jsonl:1: expected a JSON object"),
            "{err}"
        );
    }

    #[test]
    fn jsonl_stringifies_values_and_tolerates_bom_crlf_and_blank_lines() {
        let content = "\u{feff}{\"subject\":\"Down\",\"body\":\"a\\\\nb\",\"label\":1,\"lang\":\"en\"}\r\n\
                       \r\n\
                       {\"subject\":null,\"body\":\"x\",\"label\":true,\"lang\":\"en\"}\r\n\
                       {\"subject\":\"s\",\"body\":[1,\"y\"],\"label\":2.5,\"lang\":\"en\"}\r\n\
                       {\"subject\":\"de\",\"body\":\"x\",\"label\":1,\"lang\":\"de\"}\r\n";
        let (_d, data) = load_str(
            "jsonl",
            HeaderMode::Auto,
            content.as_bytes(),
            &cols(&["subject", "body"], "label", &[("lang", "en")]),
        );
        let data = data.expect("loads");
        assert_eq!(
            texts_labels(&data),
            vec![
                (vec!["Down", "a\nb"], "1"),
                (vec!["", "x"], "true"),
                (vec!["s", "[1,\"y\"]"], "2.5"),
            ]
        );
        let lines: Vec<usize> = data.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![1, 3, 4]);
        assert_eq!(data.filtered_out, 1);
    }

    #[test]
    fn literal_newlines_become_newlines() {
        let cases = [
            ("plain", "plain"),
            ("a\\nb", "a\nb"),
            ("a\\r\\nb", "a\nb"),
            ("a\\n\\nb", "a\n\nb"),
            ("real\nnewline", "real\nnewline"),
            ("tab\\t stays", "tab\\t stays"),
        ];
        for (input, expected) in cases {
            assert_eq!(unescape(input), expected, "{input:?}");
        }
    }

    #[test]
    fn format_and_modes_parse() {
        assert_eq!(
            Format::from_path(Path::new("x/Data.CSV")).ok(),
            Some(Format::Csv)
        );
        assert_eq!(
            Format::from_path(Path::new("x.ndjson")).ok(),
            Some(Format::Jsonl)
        );
        assert!(Format::from_path(Path::new("x.txt")).is_err());
        assert_eq!("jsonl".parse::<Format>().ok(), Some(Format::Jsonl));
        assert_eq!(
            "absent".parse::<HeaderMode>().ok(),
            Some(HeaderMode::Absent)
        );
        assert!("maybe".parse::<HeaderMode>().is_err());
        assert_eq!(
            Columns::parse_filter(" language = en ").ok(),
            Some(("language".into(), "en".into()))
        );
        assert!(Columns::parse_filter("=en").is_err());
        assert!(Columns::parse_filter("language").is_err());
    }
}
