//! Reading delimited text files: decoding, line and field splitting, bad-row policy,
//! and a parallel parser for large interaction files (`read/interactions.rs`).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, RowError};

mod interactions;
#[cfg(test)]
mod tests;

pub use interactions::{parse_interactions, InteractionLayout, ParsedInteractions};

/// Text encoding of a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// UTF-8 (undecodable bytes are an error).
    #[default]
    #[serde(alias = "utf8")]
    Utf8,
    /// ISO-8859-1, as GroupLens' older MovieLens files (every byte decodes).
    #[serde(alias = "latin1", alias = "iso-8859-1")]
    Latin1,
}

/// Field separator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delimiter {
    /// One byte (tab, comma, `|`).
    Byte(u8),
    /// A multi-byte sequence (ML-1M's `::`).
    Seq(String),
}

impl Delimiter {
    /// Human name for messages.
    pub fn describe(&self) -> String {
        match self {
            Delimiter::Byte(b'\t') => "tab".into(),
            Delimiter::Byte(b',') => "comma".into(),
            Delimiter::Byte(b) => format!("{:?}", *b as char),
            Delimiter::Seq(s) => format!("{s:?}"),
        }
    }

    /// Splits `line` into `out` (cleared first).
    pub fn split<'a>(&self, line: &'a [u8], out: &mut Vec<&'a [u8]>) {
        out.clear();
        match self {
            Delimiter::Byte(b) => {
                let mut start = 0;
                for pos in memchr::memchr_iter(*b, line) {
                    out.push(&line[start..pos]);
                    start = pos + 1;
                }
                out.push(&line[start..]);
            }
            Delimiter::Seq(s) => {
                let needle = s.as_bytes();
                let mut start = 0;
                for pos in memchr::memmem::find_iter(line, needle) {
                    if pos < start {
                        continue;
                    }
                    out.push(&line[start..pos]);
                    start = pos + needle.len();
                }
                out.push(&line[start..]);
            }
        }
    }
}

/// Bad-row policy: strict by default; `skip_bad_rows` counts and reports instead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowPolicy {
    /// Skip malformed rows instead of failing.
    pub skip_bad_rows: bool,
}

/// What loading skipped or merged. Nothing is dropped silently: this is reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadReport {
    /// Rows skipped because they were malformed (`--skip-bad-rows`).
    pub skipped_rows: usize,
    /// The first few skipped rows, with the reason.
    pub examples: Vec<String>,
    /// Interactions removed by the duplicate policy.
    pub duplicates_removed: usize,
}

/// How many skipped rows a report quotes.
pub const MAX_EXAMPLES: usize = 5;

impl LoadReport {
    pub(crate) fn record(&mut self, errors: impl IntoIterator<Item = RowError>, count: usize) {
        self.skipped_rows += count;
        for e in errors {
            if self.examples.len() < MAX_EXAMPLES {
                self.examples.push(e.to_string());
            }
        }
    }
}

/// A whole text file in memory.
pub struct TextFile {
    /// Its path (for messages).
    pub path: PathBuf,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its encoding.
    pub encoding: Encoding,
}

impl TextFile {
    /// Reads `path`; an empty file is an error saying what it should have held.
    /// Only a regular file within the size limit is read
    /// ([`shortlist_core::input::read_regular`]): a FIFO, device or directory is an
    /// error naming what it is.
    pub fn read(path: &Path, encoding: Encoding, expected: &str) -> Result<Self> {
        let bytes =
            shortlist_core::input::read_regular(path, shortlist_core::input::max_input_bytes())?;
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(Error::EmptyFile {
                path: path.to_path_buf(),
                expected: expected.to_owned(),
            });
        }
        Ok(TextFile {
            path: path.to_path_buf(),
            bytes,
            encoding,
        })
    }

    /// Non-blank lines with their 1-based numbers (`\r\n` endings accepted, a UTF-8 BOM skipped).
    pub fn lines(&self) -> impl Iterator<Item = (usize, &[u8])> {
        let body = self
            .bytes
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(&self.bytes);
        lines_from(body, 1)
    }

    /// Decodes one field.
    pub fn decode<'a>(
        &self,
        bytes: &'a [u8],
        ctx: &FieldCtx<'_>,
    ) -> Result<Cow<'a, str>, RowError> {
        decode(bytes, self.encoding, ctx)
    }
}

pub(super) fn lines_from(body: &[u8], first_line: usize) -> impl Iterator<Item = (usize, &[u8])> {
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(move |(i, l)| (i + first_line, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| !l.iter().all(|b| *b == b' ' || *b == b'\t'))
}

/// Where a field is, for error messages.
pub struct FieldCtx<'a> {
    /// The file.
    pub path: &'a Path,
    /// 1-based line.
    pub line: usize,
    /// 0-based column index.
    pub column: usize,
    /// Column name.
    pub name: &'a str,
}

impl FieldCtx<'_> {
    /// A [`RowError`] for this field.
    pub fn error(&self, message: impl Into<String>) -> RowError {
        RowError {
            path: self.path.to_path_buf(),
            line: self.line,
            column: Some(self.column + 1),
            field: Some(self.name.to_owned()),
            message: message.into(),
        }
    }
}

/// Decodes a field in `encoding`; invalid UTF-8 is an error naming the byte.
pub fn decode<'a>(
    bytes: &'a [u8],
    encoding: Encoding,
    ctx: &FieldCtx<'_>,
) -> Result<Cow<'a, str>, RowError> {
    match encoding {
        Encoding::Utf8 => match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Cow::Borrowed(s)),
            Err(e) => {
                let at = e.valid_up_to();
                Err(ctx.error(format!(
                    "invalid UTF-8 (byte 0x{:02x} at offset {at} of the field); declare encoding = \"latin-1\" if the file is ISO-8859-1",
                    bytes[at]
                )))
            }
        },
        Encoding::Latin1 => {
            if bytes.is_ascii() {
                // ASCII is valid UTF-8: no copy.
                Ok(Cow::Borrowed(
                    std::str::from_utf8(bytes).unwrap_or_default(),
                ))
            } else {
                Ok(Cow::Owned(bytes.iter().map(|&b| b as char).collect()))
            }
        }
    }
}

fn shown(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.into_owned()
    }
}

/// Parses a rating: a finite number.
pub fn parse_rating(bytes: &[u8], ctx: &FieldCtx<'_>) -> Result<f32, RowError> {
    let s = std::str::from_utf8(bytes).unwrap_or("").trim();
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(ctx.error(format!("expected a number, found {:?}", shown(bytes)))),
    }
}

/// Parses a Unix timestamp in seconds: an integer (or a float with no fraction, as RecBole writes).
pub fn parse_timestamp(bytes: &[u8], ctx: &FieldCtx<'_>) -> Result<i64, RowError> {
    let s = std::str::from_utf8(bytes).unwrap_or("").trim();
    if let Ok(v) = s.parse::<i64>() {
        return Ok(v);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(v as i64),
        _ => Err(ctx.error(format!(
            "expected an integer Unix timestamp in seconds, found {:?}",
            shown(bytes)
        ))),
    }
}

/// Parses a number; an empty field is missing (NaN).
pub fn parse_number(bytes: &[u8], ctx: &FieldCtx<'_>) -> Result<f64, RowError> {
    let s = std::str::from_utf8(bytes).unwrap_or("").trim();
    if s.is_empty() {
        return Ok(f64::NAN);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(ctx.error(format!("expected a number, found {:?}", shown(bytes)))),
    }
}

/// Reads all records of a small delimited file (features, metadata) with the `csv` crate
/// when `quoting` is on, else by plain splitting. Calls `row(line, fields)` per non-blank line.
pub fn for_each_record(
    file: &TextFile,
    delimiter: &Delimiter,
    quoting: bool,
    mut row: impl FnMut(usize, &[&[u8]]) -> Result<()>,
) -> Result<()> {
    let body = file
        .bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(&file.bytes);
    match (quoting, delimiter) {
        (true, Delimiter::Byte(b)) => {
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(*b)
                .has_headers(false)
                .flexible(true)
                .from_reader(body);
            let mut record = csv::ByteRecord::new();
            loop {
                match reader.read_byte_record(&mut record) {
                    Ok(false) => return Ok(()),
                    Ok(true) => {
                        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
                        if record.iter().all(|f| f.is_empty()) {
                            continue;
                        }
                        let fields: Vec<&[u8]> = record.iter().collect();
                        row(line, &fields)?;
                    }
                    Err(e) => return Err(csv_error(file, &e)),
                }
            }
        }
        _ => {
            let mut fields = Vec::new();
            for (line, text) in lines_from(body, 1) {
                delimiter.split(text, &mut fields);
                row(line, &fields)?;
            }
            Ok(())
        }
    }
}

/// A row the CSV reader could not split, as an error naming the file and line.
fn csv_error(file: &TextFile, e: &csv::Error) -> Error {
    Error::Row(RowError {
        path: file.path.clone(),
        line: e.position().map(|p| p.line() as usize).unwrap_or(0),
        column: None,
        field: None,
        message: format!("malformed CSV: {e}"),
    })
}
