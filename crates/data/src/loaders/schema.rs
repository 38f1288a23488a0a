//! Any interaction log (products, ads, posts), described by a small TOML schema.
//!
//! ```toml
//! name = "shop"                      # optional
//! duplicates = "keep-all"            # keep-all | keep-last | average (optional)
//!
//! [interactions]
//! path = "events.csv"                # relative to the schema file
//! user = "customer_id"               # column names from the header line
//! item = "sku"
//! rating = "stars"                   # optional: absent ⇒ implicit feedback
//! timestamp = "ts"                   # optional: integer Unix seconds
//! # delimiter = ","                  # default: "," for .csv, tab otherwise
//! # has_header = true                # false ⇒ give `columns = [...]`
//! # encoding = "utf-8"               # or "latin-1"
//!
//! [items]                            # optional side features, same file options
//! path = "products.csv"
//! id = "sku"
//! title = "name"                     # optional display column
//! features = [
//!   { name = "name", type = "text" },
//!   { name = "category", type = "categorical" },
//!   { name = "tags", type = "multi-categorical", separator = "|" },
//!   { name = "price", type = "numeric" },
//! ]
//!
//! [users]                            # optional, like [items]
//! path = "customers.tsv"
//! id = "customer_id"
//! features = [{ name = "country", type = "categorical" }]
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;
use shortlist_core::dataset::{ColumnKind, Dataset, Feedback, IdMap};
use shortlist_core::progress::Progress;

use super::movielens::{field, read_table, text, TableFormat};
use super::table::{split_multi, Value};
use super::{finish, LoadOptions, Loaded};
use crate::duplicates::DuplicatePolicy;
use crate::error::{Error, Result};
use crate::read::{
    for_each_record, parse_interactions, parse_number, Delimiter, Encoding, InteractionLayout,
    LoadReport, TextFile,
};

/// A dataset schema (see the module docs for the format).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// Dataset name (default: the schema file's stem).
    pub name: Option<String>,
    /// Policy for repeated (user, item) pairs (overrides the command line's).
    pub duplicates: Option<DuplicatePolicy>,
    /// The interaction log.
    pub interactions: InteractionSpec,
    /// Item side features.
    pub items: Option<TableSpec>,
    /// User side features.
    pub users: Option<TableSpec>,
}

/// Options shared by every delimited file of a schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Path, relative to the schema file.
    pub path: PathBuf,
    /// One-character delimiter (`","`, `"\t"`, `"|"`, `";"`) or `"::"`.
    pub delimiter: Option<String>,
    /// Whether the first line names the columns (default true).
    #[serde(default = "yes")]
    pub has_header: bool,
    /// Column names when there is no header line.
    pub columns: Option<Vec<String>>,
    /// Text encoding.
    #[serde(default)]
    pub encoding: Encoding,
}

fn yes() -> bool {
    true
}

/// The interaction log of a schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InteractionSpec {
    /// File options.
    #[serde(flatten)]
    pub file: FileSpec,
    /// User id column.
    pub user: String,
    /// Item id column.
    pub item: String,
    /// Rating column (absent ⇒ implicit feedback).
    pub rating: Option<String>,
    /// Timestamp column (integer Unix seconds).
    pub timestamp: Option<String>,
}

/// A side-feature file of a schema.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// File options.
    #[serde(flatten)]
    pub file: FileSpec,
    /// Id column (matches the interaction log's user or item ids).
    pub id: String,
    /// Display column (items: shown in recommendations).
    pub title: Option<String>,
    /// Feature columns.
    #[serde(default)]
    pub features: Vec<FeatureDecl>,
}

/// One declared feature column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureDecl {
    /// Column name in the file (and feature name).
    pub name: String,
    /// `categorical`, `multi-categorical`, `numeric` or `text`.
    #[serde(rename = "type")]
    pub kind: DeclKind,
    /// Separator of a multi-categorical column (default `"|"`).
    pub separator: Option<String>,
}

/// Declared feature type.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DeclKind {
    /// One value per row.
    Categorical,
    /// Several values per row, split on `separator`.
    MultiCategorical,
    /// A number.
    Numeric,
    /// Free text.
    Text,
}

impl Schema {
    /// Reads and checks a schema file.
    pub fn read(path: &Path) -> Result<Schema> {
        let text = shortlist_core::input::read_text(path)?;
        toml::from_str(&text).map_err(|e| Error::format(path, format!("invalid schema: {e}")))
    }
}

fn delimiter(spec: &FileSpec, schema_path: &Path, section: &str) -> Result<Delimiter> {
    match spec.delimiter.as_deref() {
        None => Ok(if spec.path.extension().is_some_and(|e| e == "csv") {
            Delimiter::Byte(b',')
        } else {
            Delimiter::Byte(b'\t')
        }),
        Some("tab") | Some("\t") => Ok(Delimiter::Byte(b'\t')),
        Some(d) if d.len() == 1 => Ok(Delimiter::Byte(d.as_bytes()[0])),
        Some(d) if !d.is_empty() && !d.contains('\n') => Ok(Delimiter::Seq(d.to_owned())),
        Some(d) => Err(Error::format(
            schema_path,
            format!(
                "{section}.delimiter: expected a separator such as \",\" or \"\\t\", found {d:?}"
            ),
        )),
    }
}

/// Column names of a file: its header line, or the schema's `columns`.
fn column_names(
    file: &TextFile,
    spec: &FileSpec,
    delim: &Delimiter,
    schema_path: &Path,
    section: &str,
) -> Result<Vec<String>> {
    if !spec.has_header {
        return spec.columns.clone().ok_or_else(|| {
            Error::format(
                schema_path,
                format!("{section}: has_header = false needs columns = [\"...\", ...]"),
            )
        });
    }
    let mut names = None;
    for_each_record(
        file,
        delim,
        matches!(delim, Delimiter::Byte(_)),
        |line, fields| {
            if names.is_none() {
                let mut v = Vec::with_capacity(fields.len());
                for (i, f) in fields.iter().enumerate() {
                    v.push(text(file, f, line, i, "header")?);
                }
                names = Some(v);
            }
            Ok(())
        },
    )
    .or_else(|e| match e {
        // Only the header matters here; later rows are checked when parsed.
        Error::Row(_) if names.is_some() => Ok(()),
        other => Err(other),
    })?;
    names.ok_or_else(|| Error::format(&file.path, "missing the header line"))
}

fn find(
    names: &[String],
    wanted: &str,
    schema_path: &Path,
    key: &str,
    file: &Path,
) -> Result<usize> {
    names.iter().position(|n| n == wanted).ok_or_else(|| {
        Error::format(
            schema_path,
            format!(
                "{key}: no column {wanted:?} in {} (its columns: {})",
                file.display(),
                names.join(", ")
            ),
        )
    })
}

/// Loads the dataset described by the schema at `schema_path`.
pub fn load_schema(
    schema_path: &Path,
    opts: &LoadOptions,
    progress: &dyn Progress,
) -> Result<Loaded> {
    let schema = Schema::read(schema_path)?;
    let base = schema_path.parent().unwrap_or(Path::new("."));
    let mut report = LoadReport::default();

    let spec = &schema.interactions;
    let delim = delimiter(&spec.file, schema_path, "interactions")?;
    let path = base.join(&spec.file.path);
    let file = TextFile::read(&path, spec.file.encoding, "interaction rows")?;
    let names = column_names(&file, &spec.file, &delim, schema_path, "interactions")?;
    let col = |key: &str, wanted: &str| find(&names, wanted, schema_path, key, &path);
    let layout = InteractionLayout {
        user: col("interactions.user", &spec.user)?,
        item: col("interactions.item", &spec.item)?,
        rating: spec
            .rating
            .as_deref()
            .map(|r| col("interactions.rating", r))
            .transpose()?,
        timestamp: spec
            .timestamp
            .as_deref()
            .map(|t| col("interactions.timestamp", t))
            .transpose()?,
        names: names.clone(),
        delimiter: delim,
        has_header: spec.file.has_header,
    };
    let t = std::time::Instant::now();
    let parsed = parse_interactions(&file, &layout, opts.policy, &mut report, progress)?;
    tracing::debug!(
        "parsed {} interactions in {:.2?}",
        parsed.interactions.len(),
        t.elapsed()
    );
    let (mut users, mut items) = (parsed.users, parsed.items);

    let t = std::time::Instant::now();
    let item_features = match &schema.items {
        Some(t) => side_table(t, base, schema_path, "items", &mut items, opts, &mut report)?,
        None => Default::default(),
    };
    let user_features = match &schema.users {
        Some(t) => side_table(t, base, schema_path, "users", &mut users, opts, &mut report)?,
        None => Default::default(),
    };
    tracing::debug!("read side features in {:.2?}", t.elapsed());
    let name = schema.name.clone().unwrap_or_else(|| {
        schema_path
            .parent()
            .and_then(|p| p.file_name())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dataset".into())
    });
    let mut opts = *opts;
    if let Some(d) = schema.duplicates {
        opts.duplicates = d;
    }
    finish(
        Dataset {
            name,
            users,
            items,
            interactions: parsed.interactions,
            user_features,
            item_features,
            feedback: if spec.rating.is_some() {
                Feedback::Explicit
            } else {
                Feedback::Implicit
            },
            title_column: schema.items.as_ref().and_then(|t| t.title.clone()),
        },
        report,
        &opts,
    )
}

fn side_table(
    spec: &TableSpec,
    base: &Path,
    schema_path: &Path,
    section: &str,
    ids: &mut IdMap,
    opts: &LoadOptions,
    report: &mut LoadReport,
) -> Result<shortlist_core::FeatureTable> {
    let delim = delimiter(&spec.file, schema_path, section)?;
    let path = base.join(&spec.file.path);
    let file = TextFile::read(&path, spec.file.encoding, &format!("{section} rows"))?;
    let names = column_names(&file, &spec.file, &delim, schema_path, section)?;
    let id_col = find(
        &names,
        &spec.id,
        schema_path,
        &format!("{section}.id"),
        &path,
    )?;
    let mut cols = Vec::with_capacity(spec.features.len());
    for f in &spec.features {
        let at = find(
            &names,
            &f.name,
            schema_path,
            &format!("{section}.features"),
            &path,
        )?;
        let kind = match f.kind {
            DeclKind::Categorical => ColumnKind::Categorical,
            DeclKind::MultiCategorical => ColumnKind::MultiCategorical,
            DeclKind::Numeric => ColumnKind::Numeric,
            DeclKind::Text => ColumnKind::Text,
        };
        cols.push((
            at,
            f.name.clone(),
            kind,
            f.separator.clone().unwrap_or_else(|| "|".into()),
        ));
    }
    if let Some(t) = &spec.title {
        if !spec.features.iter().any(|f| &f.name == t) {
            return Err(Error::format(
                schema_path,
                format!("{section}.title: {t:?} must also be declared in {section}.features"),
            ));
        }
    }
    let columns: Vec<(&str, ColumnKind)> = cols
        .iter()
        .map(|(_, n, k, _)| (n.as_str(), k.clone()))
        .collect();
    let quoting = matches!(delim, Delimiter::Byte(_));
    read_table(
        &file,
        &TableFormat {
            delimiter: delim,
            quoting,
            has_header: spec.file.has_header,
            columns: &columns,
            n_fields: names.len(),
        },
        ids,
        opts,
        report,
        |f, line, row| {
            let id = text(f, row[id_col], line, id_col, &spec.id)?;
            if id.is_empty() {
                return Err(
                    field(f, line, id_col, &spec.id).error("expected an id, found an empty field")
                );
            }
            let mut values = Vec::with_capacity(cols.len());
            for (at, name, kind, sep) in &cols {
                values.push(match kind {
                    ColumnKind::Categorical => Value::Cat(text(f, row[*at], line, *at, name)?),
                    ColumnKind::MultiCategorical => {
                        Value::Multi(split_multi(&text(f, row[*at], line, *at, name)?, sep))
                    }
                    ColumnKind::Numeric => {
                        Value::Num(parse_number(row[*at], &field(f, line, *at, name))?)
                    }
                    ColumnKind::Text => Value::Text(text(f, row[*at], line, *at, name)?),
                });
            }
            Ok((id, values))
        },
    )
}
