//! Reading delimited text files: decoding, line and field splitting, bad-row policy,
//! and a parallel parser for large interaction files.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use shortlist_core::dataset::IdMap;
use shortlist_core::progress::Progress;
use shortlist_core::Interactions;

use crate::error::{Error, Result, RowError};
use crate::intern::Interner;

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

fn lines_from(body: &[u8], first_line: usize) -> impl Iterator<Item = (usize, &[u8])> {
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

/// Where the interaction fields are in a row.
#[derive(Debug, Clone)]
pub struct InteractionLayout {
    /// Column names (for messages), one per expected field.
    pub names: Vec<String>,
    /// Index of the user id column.
    pub user: usize,
    /// Index of the item id column.
    pub item: usize,
    /// Index of the rating column, if any (absent ⇒ implicit feedback, rating 1).
    pub rating: Option<usize>,
    /// Index of the timestamp column, if any.
    pub timestamp: Option<usize>,
    /// Field separator.
    pub delimiter: Delimiter,
    /// Whether line 1 is a header to skip.
    pub has_header: bool,
}

/// Interactions parsed from one file, with ids interned in first-seen order.
pub struct ParsedInteractions {
    /// User ids.
    pub users: IdMap,
    /// Item ids.
    pub items: IdMap,
    /// Columns.
    pub interactions: Interactions,
}

#[derive(Default)]
struct Chunk {
    users: Interner,
    items: Interner,
    u: Vec<u32>,
    i: Vec<u32>,
    r: Vec<f32>,
    t: Vec<i64>,
    errors: Vec<RowError>,
    bad: usize,
}

impl Chunk {
    fn push_row(
        &mut self,
        file: &TextFile,
        layout: &InteractionLayout,
        line: usize,
        fields: &[&[u8]],
    ) {
        match parse_row(file, layout, line, fields) {
            Ok((u, i, r, t)) => {
                self.u.push(self.users.intern(&u));
                self.i.push(self.items.intern(&i));
                self.r.push(r);
                self.t.push(t);
            }
            Err(e) => {
                self.bad += 1;
                if self.errors.len() < MAX_EXAMPLES {
                    self.errors.push(e);
                }
            }
        }
    }
}

type Row<'a> = (Cow<'a, str>, Cow<'a, str>, f32, i64);

fn parse_row<'a>(
    file: &TextFile,
    layout: &InteractionLayout,
    line: usize,
    fields: &[&'a [u8]],
) -> Result<Row<'a>, RowError> {
    if fields.len() != layout.names.len() {
        return Err(RowError {
            path: file.path.clone(),
            line,
            column: None,
            field: None,
            message: format!(
                "expected {} columns separated by {} ({}), found {}",
                layout.names.len(),
                layout.delimiter.describe(),
                layout.names.join(", "),
                fields.len()
            ),
        });
    }
    let ctx = |column: usize| FieldCtx {
        path: &file.path,
        line,
        column,
        name: &layout.names[column],
    };
    let id = |column: usize| -> Result<Cow<'a, str>, RowError> {
        let c = ctx(column);
        let v = decode(fields[column], file.encoding, &c)?;
        if v.trim().is_empty() {
            return Err(c.error("expected an id, found an empty field"));
        }
        Ok(v)
    };
    let user = id(layout.user)?;
    let item = id(layout.item)?;
    let rating = match layout.rating {
        Some(c) => parse_rating(fields[c], &ctx(c))?,
        None => 1.0,
    };
    let ts = match layout.timestamp {
        Some(c) => parse_timestamp(fields[c], &ctx(c))?,
        None => 0,
    };
    Ok((user, item, rating, ts))
}

/// Parses an interaction file. Files without quotes are parsed in parallel chunks
/// (ids are interned per chunk and merged in file order, so the result does not
/// depend on the thread count); files with quoted fields go through the `csv` crate.
pub fn parse_interactions(
    file: &TextFile,
    layout: &InteractionLayout,
    policy: RowPolicy,
    report: &mut LoadReport,
    progress: &dyn Progress,
) -> Result<ParsedInteractions> {
    let body = file
        .bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .unwrap_or(&file.bytes);
    let quoted =
        matches!(layout.delimiter, Delimiter::Byte(_)) && memchr::memchr(b'"', body).is_some();
    progress.start(
        &format!("parsing {}", file.path.display()),
        Some(body.len() as u64),
    );
    if quoted {
        let chunk = parse_quoted(file, body, layout)?;
        progress.finish();
        return assemble(vec![chunk], layout, policy, report);
    }
    let pieces = split_chunks(body, rayon::current_num_threads() * 4);
    let chunks: Vec<RawChunk> = pieces
        .into_par_iter()
        .map(|(first_line, piece)| {
            let mut chunk = RawChunk::default();
            let mut fields = Vec::with_capacity(layout.names.len());
            for (line, text) in lines_from(piece, first_line) {
                if layout.has_header && line == 1 {
                    continue;
                }
                layout.delimiter.split(text, &mut fields);
                chunk.push_row(file, body, layout, line, &fields);
            }
            progress.advance(piece.len() as u64);
            chunk
        })
        .collect();
    progress.finish();
    if !policy.skip_bad_rows {
        if let Some(e) = chunks.iter().find_map(|c| c.errors.first()) {
            return Err(Error::Row(e.clone()));
        }
    }
    let n: usize = chunks.iter().map(|c| c.r.len()).sum();
    let mut out = Interactions {
        users: Vec::new(),
        items: Vec::new(),
        ratings: Vec::with_capacity(n),
        timestamps: layout.timestamp.map(|_| Vec::with_capacity(n)),
    };
    let mut user_keys = Keys::with_capacity(n);
    let mut item_keys = Keys::with_capacity(n);
    for c in chunks {
        report.record(c.errors, c.bad);
        user_keys.extend(&c.users);
        item_keys.extend(&c.items);
        out.ratings.extend_from_slice(&c.r);
        if let Some(t) = &mut out.timestamps {
            t.extend_from_slice(&c.t);
        }
    }
    let (users, user_idx) = intern_partitioned(body, &user_keys, file.encoding);
    drop(user_keys);
    let (items, item_idx) = intern_partitioned(body, &item_keys, file.encoding);
    out.users = user_idx;
    out.items = item_idx;
    Ok(ParsedInteractions {
        users,
        items,
        interactions: out,
    })
}

/// Merges interned chunks (the quoted-CSV path) into one result.
fn assemble(
    chunks: Vec<Chunk>,
    layout: &InteractionLayout,
    policy: RowPolicy,
    report: &mut LoadReport,
) -> Result<ParsedInteractions> {
    if !policy.skip_bad_rows {
        if let Some(e) = chunks.iter().find_map(|c| c.errors.first()) {
            return Err(Error::Row(e.clone()));
        }
    }
    let n: usize = chunks.iter().map(|c| c.u.len()).sum();
    let mut users = IdMap::default();
    let mut items = IdMap::default();
    let mut out = Interactions {
        users: Vec::with_capacity(n),
        items: Vec::with_capacity(n),
        ratings: Vec::with_capacity(n),
        timestamps: layout.timestamp.map(|_| Vec::with_capacity(n)),
    };
    for c in chunks {
        report.record(c.errors, c.bad);
        let umap: Vec<u32> = (0..c.users.len())
            .map(|k| users.intern(c.users.get(k)))
            .collect();
        let imap: Vec<u32> = (0..c.items.len())
            .map(|k| items.intern(c.items.get(k)))
            .collect();
        out.users.extend(c.u.iter().map(|&u| umap[u as usize]));
        out.items.extend(c.i.iter().map(|&i| imap[i as usize]));
        out.ratings.extend_from_slice(&c.r);
        if let Some(t) = &mut out.timestamps {
            t.extend_from_slice(&c.t);
        }
    }
    Ok(ParsedInteractions {
        users,
        items,
        interactions: out,
    })
}

/// Raw ids of rows: where each id's bytes are in the file, and their hash.
#[derive(Default)]
struct Keys {
    /// `offset << 24 | len` into the file body.
    spans: Vec<u64>,
    hashes: Vec<u64>,
}

impl Keys {
    fn with_capacity(n: usize) -> Self {
        Keys {
            spans: Vec::with_capacity(n),
            hashes: Vec::with_capacity(n),
        }
    }

    fn extend(&mut self, other: &Keys) {
        self.spans.extend_from_slice(&other.spans);
        self.hashes.extend_from_slice(&other.hashes);
    }

    fn push(&mut self, body: &[u8], field: &[u8]) {
        let offset = field.as_ptr() as usize - body.as_ptr() as usize;
        self.spans
            .push(((offset as u64) << 24) | field.len() as u64);
        self.hashes.push(std::hash::BuildHasher::hash_one(
            &rustc_hash::FxBuildHasher,
            field,
        ));
    }
}

fn span_bytes(body: &[u8], span: u64) -> &[u8] {
    let (offset, len) = ((span >> 24) as usize, (span & 0xFF_FFFF) as usize);
    &body[offset..offset + len]
}

/// Rows parsed without interning (the fast path): ids stay spans into the file.
#[derive(Default)]
struct RawChunk {
    users: Keys,
    items: Keys,
    r: Vec<f32>,
    t: Vec<i64>,
    errors: Vec<RowError>,
    bad: usize,
}

impl RawChunk {
    fn push_row(
        &mut self,
        file: &TextFile,
        body: &[u8],
        layout: &InteractionLayout,
        line: usize,
        fields: &[&[u8]],
    ) {
        let too_long = |c: usize| fields.get(c).is_some_and(|f| f.len() >= 1 << 24);
        let parsed = if too_long(layout.user) || too_long(layout.item) {
            Err(RowError {
                path: file.path.clone(),
                line,
                column: None,
                field: None,
                message: "an id is longer than 16 MiB".into(),
            })
        } else {
            parse_row(file, layout, line, fields)
        };
        match parsed {
            Ok((_, _, r, t)) => {
                // Raw bytes identify ids: equal bytes ⇔ equal decoded strings.
                self.users.push(body, fields[layout.user]);
                self.items.push(body, fields[layout.item]);
                self.r.push(r);
                self.t.push(t);
            }
            Err(e) => {
                self.bad += 1;
                if self.errors.len() < MAX_EXAMPLES {
                    self.errors.push(e);
                }
            }
        }
    }
}

/// Interns ids into dense indices in first-seen order, cache-friendly: rows are first
/// partitioned by hash into 1024 buckets small enough for the CPU caches, each bucket is
/// interned separately (in parallel), then distinct ids are numbered by their first row.
/// (A single hash map over a million ids misses the caches on nearly every lookup.)
fn intern_partitioned(body: &[u8], keys: &Keys, encoding: Encoding) -> (IdMap, Vec<u32>) {
    const BITS: u32 = 10;
    let parts = 1usize << BITS;
    let n = keys.hashes.len();
    let part = |h: u64| (h >> (64 - BITS)) as usize;
    let mut starts = vec![0usize; parts + 1];
    for &h in &keys.hashes {
        starts[part(h) + 1] += 1;
    }
    for q in 0..parts {
        starts[q + 1] += starts[q];
    }
    let mut fill = starts.clone();
    let mut order = vec![0u32; n];
    for (r, &h) in keys.hashes.iter().enumerate() {
        let q = part(h);
        order[fill[q]] = r as u32;
        fill[q] += 1;
    }
    // Per bucket: a local id for every row (in bucket order) and the distinct ids with
    // their first row.
    let buckets: Vec<(Vec<u32>, Vec<u32>)> = (0..parts)
        .into_par_iter()
        .map(|q| {
            let rows = &order[starts[q]..starts[q + 1]];
            let mut table: hashbrown::HashTable<u32> = hashbrown::HashTable::new();
            let mut firsts: Vec<u32> = Vec::new();
            let mut local = Vec::with_capacity(rows.len());
            for &r in rows {
                let h = keys.hashes[r as usize];
                let key = span_bytes(body, keys.spans[r as usize]);
                let found = table.find(h, |&u| {
                    let f = firsts[u as usize] as usize;
                    keys.hashes[f] == h && span_bytes(body, keys.spans[f]) == key
                });
                let id = match found {
                    Some(&u) => u,
                    None => {
                        let u = firsts.len() as u32;
                        firsts.push(r);
                        table.insert_unique(h, u, |&v| keys.hashes[firsts[v as usize] as usize]);
                        u
                    }
                };
                local.push(id);
            }
            (local, firsts)
        })
        .collect();
    // Global numbering by first occurrence.
    let mut all: Vec<(u32, u32, u32)> = buckets
        .iter()
        .enumerate()
        .flat_map(|(q, (_, firsts))| {
            firsts
                .iter()
                .enumerate()
                .map(move |(u, &f)| (f, q as u32, u as u32))
        })
        .collect();
    all.sort_unstable_by_key(|&(f, _, _)| f);
    let mut global: Vec<Vec<u32>> = buckets.iter().map(|(_, f)| vec![0; f.len()]).collect();
    let mut raw = Vec::with_capacity(all.len());
    for (g, &(f, q, u)) in all.iter().enumerate() {
        global[q as usize][u as usize] = g as u32;
        let bytes = span_bytes(body, keys.spans[f as usize]);
        raw.push(match encoding {
            Encoding::Utf8 => String::from_utf8_lossy(bytes).into_owned(),
            Encoding::Latin1 => bytes.iter().map(|&b| b as char).collect(),
        });
    }
    let mut ids = vec![0u32; n];
    for (q, (local, _)) in buckets.iter().enumerate() {
        for (k, &r) in order[starts[q]..starts[q + 1]].iter().enumerate() {
            ids[r as usize] = global[q][local[k] as usize];
        }
    }
    (IdMap::from_raw(raw), ids)
}

/// Splits `body` into about `n` pieces at line boundaries, with each piece's first line number.
fn split_chunks(body: &[u8], n: usize) -> Vec<(usize, &[u8])> {
    let target = (body.len() / n.max(1)).max(1 << 16);
    let mut bounds = vec![0usize];
    let mut pos = 0;
    while pos + target < body.len() {
        match memchr::memchr(b'\n', &body[pos + target..]) {
            Some(off) => {
                pos = pos + target + off + 1;
                bounds.push(pos);
            }
            None => break,
        }
    }
    bounds.push(body.len());
    let pieces: Vec<&[u8]> = bounds.windows(2).map(|w| &body[w[0]..w[1]]).collect();
    let counts: Vec<usize> = pieces
        .par_iter()
        .map(|p| memchr::memchr_iter(b'\n', p).count())
        .collect();
    let mut line = 1;
    pieces
        .into_iter()
        .zip(counts)
        .map(|(p, c)| {
            let first = line;
            line += c;
            (first, p)
        })
        .collect()
}

fn parse_quoted(file: &TextFile, body: &[u8], layout: &InteractionLayout) -> Result<Chunk> {
    let Delimiter::Byte(delim) = layout.delimiter else {
        return Err(Error::format(
            &file.path,
            "quoted fields need a one-byte delimiter",
        ));
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delim)
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    let mut chunk = Chunk::default();
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
                if (layout.has_header && line == 1) || record.iter().all(|f| f.is_empty()) {
                    continue;
                }
                let fields: Vec<&[u8]> = record.iter().collect();
                chunk.push_row(file, layout, line, &fields);
            }
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                return Err(Error::Row(RowError {
                    path: file.path.clone(),
                    line,
                    column: None,
                    field: None,
                    message: format!("malformed CSV: {e}"),
                }));
            }
        }
    }
    Ok(chunk)
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
                    Err(e) => {
                        let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                        return Err(Error::Row(RowError {
                            path: file.path.clone(),
                            line,
                            column: None,
                            field: None,
                            message: format!("malformed CSV: {e}"),
                        }));
                    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use shortlist_core::progress::NoProgress;

    fn file(text: &[u8]) -> TextFile {
        TextFile {
            path: "x.tsv".into(),
            bytes: text.to_vec(),
            encoding: Encoding::Utf8,
        }
    }

    fn layout(delim: u8) -> InteractionLayout {
        InteractionLayout {
            names: vec!["user".into(), "item".into(), "rating".into(), "ts".into()],
            user: 0,
            item: 1,
            rating: Some(2),
            timestamp: Some(3),
            delimiter: Delimiter::Byte(delim),
            has_header: false,
        }
    }

    #[test]
    fn seq_delimiter_splits() {
        let mut out = Vec::new();
        Delimiter::Seq("::".into()).split(b"1::2::5::978300760", &mut out);
        assert_eq!(out, vec![&b"1"[..], b"2", b"5", b"978300760"]);
    }

    #[test]
    fn chunked_parse_matches_sequential_ids() {
        let mut text = Vec::new();
        for k in 0..50_000u32 {
            text.extend_from_slice(
                format!("u{}\ti{}\t{}\t{}\n", k % 97, k % 31, k % 5 + 1, k).as_bytes(),
            );
        }
        let f = file(&text);
        let mut report = LoadReport::default();
        let p = parse_interactions(
            &f,
            &layout(b'\t'),
            RowPolicy::default(),
            &mut report,
            &NoProgress,
        )
        .unwrap();
        assert_eq!(p.interactions.len(), 50_000);
        assert_eq!(p.users.raw(0), "u0");
        assert_eq!(p.users.raw(96), "u96");
        assert_eq!(p.items.len(), 31);
        assert_eq!(p.interactions.timestamps.as_ref().unwrap()[49_999], 49_999);
        assert_eq!(p.users.raw(p.interactions.users[12_345]), "u26");
    }

    #[test]
    fn strict_mode_reports_first_bad_row() {
        let f = file(b"a\tb\t5\t1\na\tc\tfive\t2\na\td\n");
        let err = parse_interactions(
            &f,
            &layout(b'\t'),
            RowPolicy::default(),
            &mut LoadReport::default(),
            &NoProgress,
        )
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            "x.tsv:2: column 3 (rating): expected a number, found \"five\""
        );
    }

    #[test]
    fn skip_mode_counts_and_quotes() {
        let f = file(b"a\tb\t5\t1\na\tc\tfive\t2\na\td\n\na\te\t3\t4\n");
        let mut report = LoadReport::default();
        let p = parse_interactions(
            &f,
            &layout(b'\t'),
            RowPolicy {
                skip_bad_rows: true,
            },
            &mut report,
            &NoProgress,
        )
        .unwrap();
        assert_eq!(p.interactions.len(), 2);
        assert_eq!(report.skipped_rows, 2);
        assert_eq!(
            report.examples[1],
            "x.tsv:3: expected 4 columns separated by tab (user, item, rating, ts), found 2"
        );
    }

    #[test]
    fn quoted_csv_goes_through_csv_reader() {
        let f = file(b"\"u,1\",i1,4.5,10\r\nu2,\"i 2\",3,11\r\n");
        let p = parse_interactions(
            &f,
            &layout(b','),
            RowPolicy::default(),
            &mut LoadReport::default(),
            &NoProgress,
        )
        .unwrap();
        assert_eq!(p.users.raw(0), "u,1");
        assert_eq!(p.items.raw(1), "i 2");
        assert_eq!(p.interactions.ratings, vec![4.5, 3.0]);
    }

    #[test]
    fn invalid_utf8_is_named() {
        let f = file(b"a\tb\xff\t5\t1\n");
        let err = parse_interactions(
            &f,
            &layout(b'\t'),
            RowPolicy::default(),
            &mut LoadReport::default(),
            &NoProgress,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.starts_with("x.tsv:1: column 2 (item): invalid UTF-8 (byte 0xff at offset 1"),
            "{err}"
        );
    }

    #[test]
    fn timestamps_accept_integral_floats_only() {
        let c = FieldCtx {
            path: Path::new("f"),
            line: 1,
            column: 3,
            name: "ts",
        };
        assert_eq!(parse_timestamp(b"881250949.0", &c).unwrap(), 881250949);
        assert!(parse_timestamp(b"1.5", &c).is_err());
        assert!(parse_rating(b"nan", &c).is_err());
    }
}
