//! RecBole atomic files: `NAME.inter`, `NAME.item`, `NAME.user`, tab-separated with typed
//! headers (`user_id:token`, `rating:float`, `class:token_seq`, …).
//!
//! Types map to feature columns: `token` → categorical, `token_seq` → multi-categorical
//! (space-separated), or text when the column name contains `title` or `name`,
//! `float` → numeric. `float_seq` columns are not supported and are reported, not loaded.

use std::path::{Path, PathBuf};

use shortlist_core::dataset::{ColumnKind, ColumnValues, Dataset, Feedback};
use shortlist_core::progress::Progress;

use super::movielens::{field, read_table, text, TableFormat};
use super::table::{split_multi, Value};
use super::{finish, LoadOptions, Loaded};
use crate::error::{Error, Result};
use crate::read::{
    parse_interactions, parse_number, Delimiter, Encoding, InteractionLayout, LoadReport, TextFile,
};

/// One typed header field.
#[derive(Debug, Clone)]
struct HeaderField {
    name: String,
    ty: String,
}

fn header(file: &TextFile) -> Result<Vec<HeaderField>> {
    let (_, first) = file
        .lines()
        .next()
        .ok_or_else(|| Error::format(&file.path, "missing the typed header line"))?;
    let line = std::str::from_utf8(first)
        .map_err(|_| Error::format(&file.path, "line 1: header is not UTF-8"))?;
    line.split('\t')
        .enumerate()
        .map(|(i, f)| match f.trim().split_once(':') {
            Some((name, ty)) if ["token", "token_seq", "float", "float_seq"].contains(&ty) => Ok(HeaderField {
                name: name.to_owned(),
                ty: ty.to_owned(),
            }),
            _ => Err(Error::format(
                &file.path,
                format!(
                    "line 1, column {}: expected a typed header field NAME:TYPE with TYPE token, token_seq, float or float_seq, found {f:?}",
                    i + 1
                ),
            )),
        })
        .collect()
}

fn position(fields: &[HeaderField], name: &str, path: &Path) -> Result<usize> {
    fields.iter().position(|f| f.name == name).ok_or_else(|| {
        Error::format(
            path,
            format!(
                "expected a {name} column in the header, found {}",
                fields
                    .iter()
                    .map(|f| format!("{}:{}", f.name, f.ty))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

/// Finds `NAME.inter` in `dir` (or takes `path` if it is the `.inter` file itself).
pub fn inter_file(path: &Path) -> Option<PathBuf> {
    if path.is_file() {
        return (path.extension()? == "inter").then(|| path.to_path_buf());
    }
    let mut found: Vec<PathBuf> = fs_err::read_dir(path)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "inter"))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Loads RecBole atomic files given the `.inter` file; `.item` and `.user` beside it are optional.
pub fn load_recbole(inter: &Path, opts: &LoadOptions, progress: &dyn Progress) -> Result<Loaded> {
    let mut report = LoadReport::default();
    let file = TextFile::read(
        inter,
        Encoding::Utf8,
        "a typed header and tab-separated interactions",
    )?;
    let fields = header(&file)?;
    let layout = InteractionLayout {
        names: fields.iter().map(|f| f.name.clone()).collect(),
        user: position(&fields, "user_id", inter)?,
        item: position(&fields, "item_id", inter)?,
        rating: fields.iter().position(|f| f.name == "rating"),
        timestamp: fields.iter().position(|f| f.name == "timestamp"),
        delimiter: Delimiter::Byte(b'\t'),
        has_header: true,
    };
    let feedback = if layout.rating.is_some() {
        Feedback::Explicit
    } else {
        Feedback::Implicit
    };
    let parsed = parse_interactions(&file, &layout, opts.policy, &mut report, progress)?;
    let (mut users, mut items) = (parsed.users, parsed.items);
    let item_features = side_table(
        &inter.with_extension("item"),
        "item_id",
        &mut items,
        opts,
        &mut report,
    )?;
    let user_features = side_table(
        &inter.with_extension("user"),
        "user_id",
        &mut users,
        opts,
        &mut report,
    )?;
    let name = inter
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let title_column = item_features
        .columns
        .iter()
        .find(|c| matches!(c.values, ColumnValues::Text(_)))
        .map(|c| c.name.clone());
    finish(
        Dataset {
            name,
            users,
            items,
            interactions: parsed.interactions,
            user_features,
            item_features,
            feedback,
            title_column,
        },
        report,
        opts,
    )
}

fn kind_of(f: &HeaderField) -> Option<ColumnKind> {
    match f.ty.as_str() {
        "token" => Some(ColumnKind::Categorical),
        "token_seq" if f.name.contains("title") || f.name.contains("name") => {
            Some(ColumnKind::Text)
        }
        "token_seq" => Some(ColumnKind::MultiCategorical),
        "float" => Some(ColumnKind::Numeric),
        _ => None,
    }
}

fn side_table(
    path: &Path,
    id_name: &str,
    ids: &mut shortlist_core::IdMap,
    opts: &LoadOptions,
    report: &mut LoadReport,
) -> Result<shortlist_core::FeatureTable> {
    if !path.exists() {
        return Ok(shortlist_core::FeatureTable::default());
    }
    let file = TextFile::read(
        path,
        Encoding::Utf8,
        "a typed header and tab-separated rows",
    )?;
    let fields = header(&file)?;
    let id_col = position(&fields, id_name, path)?;
    let mut used: Vec<(usize, String, ColumnKind)> = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if i == id_col {
            continue;
        }
        match kind_of(f) {
            Some(kind) => used.push((i, f.name.clone(), kind)),
            None => tracing::warn!(
                "{}: column {}:{} is not loaded (float_seq is not supported)",
                path.display(),
                f.name,
                f.ty
            ),
        }
    }
    let columns: Vec<(&str, ColumnKind)> = used
        .iter()
        .map(|(_, n, k)| (n.as_str(), k.clone()))
        .collect();
    read_table(
        &file,
        &TableFormat {
            delimiter: Delimiter::Byte(b'\t'),
            quoting: false,
            has_header: true,
            columns: &columns,
            n_fields: fields.len(),
        },
        ids,
        opts,
        report,
        |f, line, row| {
            let id = text(f, row[id_col], line, id_col, id_name)?;
            let mut values = Vec::with_capacity(used.len());
            for (i, name, kind) in &used {
                let v = match kind {
                    ColumnKind::Categorical => Value::Cat(text(f, row[*i], line, *i, name)?),
                    ColumnKind::MultiCategorical => {
                        Value::Multi(split_multi(&text(f, row[*i], line, *i, name)?, " "))
                    }
                    ColumnKind::Text => Value::Text(text(f, row[*i], line, *i, name)?),
                    ColumnKind::Numeric => {
                        Value::Num(parse_number(row[*i], &field(f, line, *i, name))?)
                    }
                };
                values.push(v);
            }
            Ok((id, values))
        },
    )
}

/// Reshapes RecBole's copy of ML-100k to look like GroupLens' (titles with the year in
/// parentheses, `genres`, numeric `release_year` and `age`), so both sources give the
/// same dataset apart from title spelling.
pub fn normalise_ml100k(loaded: &mut Loaded) {
    let d = &mut loaded.dataset;
    d.name = "ml-100k".into();
    let years: Option<Vec<String>> =
        d.item_features
            .get("release_year")
            .and_then(|c| match &c.values {
                ColumnValues::Categorical(v) => Some(v.clone()),
                _ => None,
            });
    for c in &mut d.item_features.columns {
        match (c.name.as_str(), &mut c.values) {
            ("movie_title", ColumnValues::Text(titles)) => {
                c.name = "title".into();
                if let Some(years) = &years {
                    for (t, y) in titles.iter_mut().zip(years) {
                        if !y.is_empty() {
                            *t = format!("{t} ({y})");
                        }
                    }
                }
            }
            ("class", _) => c.name = "genres".into(),
            _ => {}
        }
    }
    numeric(&mut d.item_features, "release_year");
    numeric(&mut d.user_features, "age");
    d.title_column = Some("title".into());
}

fn numeric(table: &mut shortlist_core::FeatureTable, name: &str) {
    for c in &mut table.columns {
        if c.name == name {
            if let ColumnValues::Categorical(v) = &c.values {
                c.values = ColumnValues::Numeric(
                    v.iter().map(|s| s.parse().unwrap_or(f64::NAN)).collect(),
                );
            }
        }
    }
}
