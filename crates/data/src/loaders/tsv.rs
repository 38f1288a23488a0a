//! The split file format, a contract shared with other systems:
//! tab-separated, header `user_id⇥item_id⇥rating⇥timestamp` (⇥ = tab), raw ids, one interaction per line.
//! Columns are found by name, so `rating` and `timestamp` may be absent on input
//! (implicit feedback, no time); an empty timestamp in the first row means "no timestamps".

use std::io::Write;
use std::path::Path;

use shortlist_core::dataset::{Column, ColumnValues, Dataset, FeatureTable, Feedback, IdMap};
use shortlist_core::progress::Progress;
use shortlist_core::Interactions;

use super::{finish, LoadOptions, Loaded};
use crate::error::{Error, Result};
use crate::read::{
    parse_interactions, Delimiter, Encoding, InteractionLayout, LoadReport, ParsedInteractions,
    TextFile,
};

/// The header line of split files.
pub const HEADER: &str = "user_id\titem_id\trating\ttimestamp";

fn layout(file: &TextFile) -> Result<InteractionLayout> {
    let mut lines = file.lines();
    let (_, header) = lines
        .next()
        .ok_or_else(|| Error::format(&file.path, "missing the header line"))?;
    let header = String::from_utf8_lossy(header);
    let names: Vec<String> = header.split('\t').map(|s| s.trim().to_owned()).collect();
    let find = |n: &str| names.iter().position(|x| x == n);
    let (Some(user), Some(item)) = (find("user_id"), find("item_id")) else {
        return Err(Error::format(
            &file.path,
            format!("line 1: expected the header {HEADER:?} (tab-separated; rating and timestamp optional), found {header:?}"),
        ));
    };
    let mut timestamp = find("timestamp");
    if let (Some(t), Some((_, first))) = (timestamp, lines.next()) {
        if first
            .split(|&b| b == b'\t')
            .nth(t)
            .is_some_and(|f| f.is_empty())
        {
            timestamp = None;
        }
    }
    Ok(InteractionLayout {
        user,
        item,
        rating: find("rating"),
        timestamp,
        names,
        delimiter: Delimiter::Byte(b'\t'),
        has_header: true,
    })
}

fn parse(
    path: &Path,
    opts: &LoadOptions,
    report: &mut LoadReport,
    progress: &dyn Progress,
) -> Result<(ParsedInteractions, bool)> {
    let file = TextFile::read(
        path,
        Encoding::Utf8,
        &format!("the header {HEADER:?} and interaction rows"),
    )?;
    let layout = layout(&file)?;
    let explicit = layout.rating.is_some();
    Ok((
        parse_interactions(&file, &layout, opts.policy, report, progress)?,
        explicit,
    ))
}

/// Loads one split file as a dataset.
pub fn load_tsv(path: &Path, opts: &LoadOptions, progress: &dyn Progress) -> Result<Loaded> {
    let mut report = LoadReport::default();
    let (p, explicit) = parse(path, opts, &mut report, progress)?;
    finish(
        Dataset {
            name: path.display().to_string(),
            users: p.users,
            items: p.items,
            interactions: p.interactions,
            feedback: if explicit {
                Feedback::Explicit
            } else {
                Feedback::Implicit
            },
            ..Dataset::default()
        },
        report,
        opts,
    )
}

/// A dataset with a train/test partition of its interaction rows.
#[derive(Debug, Clone)]
pub struct SplitData {
    /// All interactions (train rows first when loaded from two files).
    pub dataset: Dataset,
    /// Training rows.
    pub train: Vec<usize>,
    /// Test rows.
    pub test: Vec<usize>,
    /// What loading skipped or merged.
    pub report: LoadReport,
}

fn append(all: &mut Interactions, users: &mut IdMap, items: &mut IdMap, p: ParsedInteractions) {
    let umap: Vec<u32> = p.users.raw_ids().iter().map(|r| users.intern(r)).collect();
    let imap: Vec<u32> = p.items.raw_ids().iter().map(|r| items.intern(r)).collect();
    all.users
        .extend(p.interactions.users.iter().map(|&u| umap[u as usize]));
    all.items
        .extend(p.interactions.items.iter().map(|&i| imap[i as usize]));
    all.ratings.extend_from_slice(&p.interactions.ratings);
    match (&mut all.timestamps, p.interactions.timestamps) {
        (Some(t), Some(src)) => t.extend_from_slice(&src),
        (t, _) => *t = None,
    }
}

/// Loads a train file and a test file into one dataset (ids shared; test ids unseen in
/// training get new indices). Duplicate policy applies within each file.
pub fn load_split(
    train: &Path,
    test: &Path,
    opts: &LoadOptions,
    progress: &dyn Progress,
) -> Result<SplitData> {
    let mut report = LoadReport::default();
    let mut users = IdMap::default();
    let mut items = IdMap::default();
    let mut all = Interactions {
        timestamps: Some(Vec::new()),
        ..Interactions::default()
    };
    let mut explicit = true;
    let mut sizes = [0usize; 2];
    for (k, path) in [train, test].into_iter().enumerate() {
        let (mut p, e) = parse(path, opts, &mut report, progress)?;
        if p.interactions.is_empty() {
            return Err(Error::format(path, "no interactions after the header"));
        }
        report.duplicates_removed += crate::duplicates::apply(&mut p.interactions, opts.duplicates);
        explicit &= e;
        sizes[k] = p.interactions.len();
        append(&mut all, &mut users, &mut items, p);
    }
    let dataset = Dataset {
        name: train.display().to_string(),
        users,
        items,
        interactions: all,
        feedback: if explicit {
            Feedback::Explicit
        } else {
            Feedback::Implicit
        },
        ..Dataset::default()
    };
    Ok(SplitData {
        dataset,
        train: (0..sizes[0]).collect(),
        test: (sizes[0]..sizes[0] + sizes[1]).collect(),
        report,
    })
}

fn select_rows(src: &FeatureTable, from: &IdMap, to: &IdMap) -> FeatureTable {
    let idx: Vec<Option<usize>> = to
        .raw_ids()
        .iter()
        .map(|r| from.get(r).map(|i| i as usize))
        .collect();
    fn pick<T: Clone>(v: &[T], idx: &[Option<usize>], missing: T) -> Vec<T> {
        idx.iter()
            .map(|i| {
                i.and_then(|i| v.get(i))
                    .cloned()
                    .unwrap_or_else(|| missing.clone())
            })
            .collect()
    }
    FeatureTable {
        columns: src
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                values: match &c.values {
                    ColumnValues::Categorical(v) => {
                        ColumnValues::Categorical(pick(v, &idx, String::new()))
                    }
                    ColumnValues::Text(v) => ColumnValues::Text(pick(v, &idx, String::new())),
                    ColumnValues::MultiCategorical(v) => {
                        ColumnValues::MultiCategorical(pick(v, &idx, Vec::new()))
                    }
                    ColumnValues::Numeric(v) => ColumnValues::Numeric(pick(v, &idx, f64::NAN)),
                },
            })
            .collect(),
    }
}

/// Attaches the user and item side-feature tables of `source` (e.g. the cached full
/// dataset the split came from) to `split`, matching users and items by raw id. Ids of
/// the split that `source` lacks get missing values; the title column is carried over.
/// The items of `source` that the split lacks are added after the split's (without
/// interactions): they are the catalogue, which includes products nobody interacted
/// with yet (without them, the only new products a model could know of would be those
/// the test file happens to contain).
/// Returns how many split users and items were found in `source`.
pub fn attach_features(split: &mut SplitData, source: &Dataset) -> (usize, usize) {
    let d = &mut split.dataset;
    let found = |to: &IdMap, from: &IdMap| {
        to.raw_ids()
            .iter()
            .filter(|r| from.get(r).is_some())
            .count()
    };
    let found_items = found(&d.items, &source.items);
    for raw in source.items.raw_ids() {
        d.items.intern(raw);
    }
    d.user_features = select_rows(&source.user_features, &source.users, &d.users);
    d.item_features = select_rows(&source.item_features, &source.items, &d.items);
    d.title_column = source.title_column.clone();
    (found(&d.users, &source.users), found_items)
}

/// Formats a rating the way it reads best: `4` for whole numbers, else the shortest exact form.
pub fn format_rating(r: f32) -> String {
    if r.fract() == 0.0 && r.abs() < 1e9 {
        format!("{}", r as i64)
    } else {
        format!("{r}")
    }
}

/// Writes `rows` of `dataset` as a split file, atomically. Returns the bytes written
/// (callers hash them).
pub fn write_rows(path: &Path, dataset: &Dataset, rows: &[usize]) -> Result<Vec<u8>> {
    let inter = &dataset.interactions;
    let mut out = Vec::with_capacity(rows.len() * 24 + 64);
    writeln!(out, "{HEADER}")?;
    for &r in rows {
        let ts = inter
            .timestamp(r)
            .map(|t| t.to_string())
            .unwrap_or_default();
        writeln!(
            out,
            "{}\t{}\t{}\t{}",
            dataset.users.raw(inter.users[r]),
            dataset.items.raw(inter.items[r]),
            format_rating(inter.ratings[r]),
            ts
        )?;
    }
    shortlist_core::atomic::write_file(path, &out)?;
    Ok(out)
}
