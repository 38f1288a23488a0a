//! The parallel parser of large interaction files: rows split into chunks on line
//! boundaries, each chunk parsed and its ids interned on its own thread, the chunks
//! merged in file order (quoted files take a sequential `csv` path). The generic
//! decoding, field splitting and bad-row policy it builds on are in `read.rs`.

use std::borrow::Cow;

use rayon::prelude::*;
use shortlist_core::dataset::IdMap;
use shortlist_core::progress::Progress;
use shortlist_core::Interactions;

use super::{
    csv_error, decode, lines_from, parse_rating, parse_timestamp, Delimiter, Encoding, FieldCtx,
    LoadReport, RowPolicy, TextFile, MAX_EXAMPLES,
};
use crate::error::{Error, Result, RowError};
use crate::intern::Interner;

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

/// Counts a bad row, keeping the first [`MAX_EXAMPLES`] errors as examples.
fn note_bad(bad: &mut usize, errors: &mut Vec<RowError>, e: RowError) {
    *bad += 1;
    if errors.len() < MAX_EXAMPLES {
        errors.push(e);
    }
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
            Err(e) => note_bad(&mut self.bad, &mut self.errors, e),
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

/// Raw ids of rows: each id's bytes (inline when short, else where they are in the
/// file) and their hash.
#[derive(Default)]
struct Keys {
    /// An id of at most [`INLINE_MAX`] bytes: `INLINE | len << 56 | bytes` (little
    /// endian), so equal spans mean equal ids and interning never reads the file again
    /// for it; a longer one: `offset << 24 | len` into the file body.
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
        let span = if field.len() <= INLINE_MAX {
            let mut bytes = [0u8; 8];
            bytes[..field.len()].copy_from_slice(field);
            INLINE | ((field.len() as u64) << 56) | u64::from_le_bytes(bytes)
        } else {
            let offset = field.as_ptr() as usize - body.as_ptr() as usize;
            ((offset as u64) << 24) | field.len() as u64
        };
        self.spans.push(span);
        self.hashes.push(std::hash::BuildHasher::hash_one(
            &rustc_hash::FxBuildHasher,
            field,
        ));
    }
}

/// The flag of an inline span (offsets stay below 2³⁹, so it is never an offset bit).
const INLINE: u64 = 1 << 63;
/// The longest id kept inline in its span.
const INLINE_MAX: usize = 7;

/// The bytes of an id: from the span itself when inline (copied into `buf`), else from
/// the file body.
fn span_bytes<'a>(body: &'a [u8], span: u64, buf: &'a mut [u8; 8]) -> &'a [u8] {
    if span & INLINE != 0 {
        *buf = span.to_le_bytes();
        let len = ((span >> 56) & 0x7F) as usize;
        &buf[..len]
    } else {
        let (offset, len) = ((span >> 24) as usize, (span & 0xFF_FFFF) as usize);
        &body[offset..offset + len]
    }
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
            Err(e) => note_bad(&mut self.bad, &mut self.errors, e),
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
            // The distinct ids' hashes and spans, and the bytes of the long ones, copied
            // into the bucket: reading the first row's bytes in `body` missed the caches
            // on every lookup (first rows lie anywhere in a file of hundreds of MB).
            let mut first_hashes: Vec<u64> = Vec::new();
            let mut first_spans: Vec<u64> = Vec::new();
            let mut ends: Vec<u32> = Vec::new();
            let mut arena: Vec<u8> = Vec::new();
            let mut local = Vec::with_capacity(rows.len());
            let mut buf = [0u8; 8];
            for &r in rows {
                let h = keys.hashes[r as usize];
                let span = keys.spans[r as usize];
                let inline = span & INLINE != 0;
                let key: &[u8] = if inline {
                    &[]
                } else {
                    span_bytes(body, span, &mut buf)
                };
                let found = table.find(h, |&u| {
                    let u = u as usize;
                    if first_hashes[u] != h {
                        return false;
                    }
                    if inline || first_spans[u] & INLINE != 0 {
                        return first_spans[u] == span;
                    }
                    let start = if u == 0 { 0 } else { ends[u - 1] as usize };
                    &arena[start..ends[u] as usize] == key
                });
                let id = match found {
                    Some(&u) => u,
                    None => {
                        let u = firsts.len() as u32;
                        firsts.push(r);
                        first_hashes.push(h);
                        first_spans.push(span);
                        arena.extend_from_slice(key);
                        ends.push(arena.len() as u32);
                        table.insert_unique(h, u, |&v| first_hashes[v as usize]);
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
    let mut buf = [0u8; 8];
    for (g, &(f, q, u)) in all.iter().enumerate() {
        global[q as usize][u as usize] = g as u32;
        let bytes = span_bytes(body, keys.spans[f as usize], &mut buf);
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
            Err(e) => return Err(csv_error(file, &e)),
        }
    }
    Ok(chunk)
}
