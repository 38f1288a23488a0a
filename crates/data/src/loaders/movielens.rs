//! GroupLens MovieLens files: ML-100k (`u.data`, `u.item`, `u.user`), ML-1M (`*.dat`,
//! `::`-separated, latin-1) and ML-latest / ML-25M (`ratings.csv`, `movies.csv`).

use std::path::Path;

use shortlist_core::dataset::{ColumnKind, Dataset, FeatureTable, Feedback, IdMap, Interactions};
use shortlist_core::progress::Progress;

use super::table::{split_multi, TableBuilder, Value};
use super::{finish, LoadOptions, Loaded};
use crate::error::{Error, Result, RowError};
use crate::read::{
    decode, for_each_record, parse_interactions, parse_number, Delimiter, Encoding, FieldCtx,
    InteractionLayout, LoadReport, ParsedInteractions, TextFile,
};

/// The 19 genre flags of `u.item`, in file order.
pub const ML100K_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

fn layout(names: [&str; 4], delimiter: Delimiter, has_header: bool) -> InteractionLayout {
    InteractionLayout {
        names: names.iter().map(|s| s.to_string()).collect(),
        user: 0,
        item: 1,
        rating: Some(2),
        timestamp: Some(3),
        delimiter,
        has_header,
    }
}

/// Reads the ratings file `path` (its rows as `expected`, for the error when it is
/// missing) and parses it in `layout`.
fn read_ratings(
    path: &Path,
    encoding: Encoding,
    expected: &str,
    layout: InteractionLayout,
    opts: &LoadOptions,
    report: &mut LoadReport,
    progress: &dyn Progress,
) -> Result<ParsedInteractions> {
    let data = TextFile::read(path, encoding, expected)?;
    parse_interactions(&data, &layout, opts.policy, report, progress)
}

/// A MovieLens dataset: explicit ratings, items titled by their `title` column;
/// `features` are the (user, item) feature tables.
fn movielens_dataset(
    name: String,
    users: IdMap,
    items: IdMap,
    interactions: Interactions,
    features: (FeatureTable, FeatureTable),
) -> Dataset {
    let (user_features, item_features) = features;
    Dataset {
        name,
        users,
        items,
        interactions,
        user_features,
        item_features,
        feedback: Feedback::Explicit,
        title_column: Some("title".into()),
    }
}

/// Handles a row error under the policy: strict fails, skip records it.
pub(crate) fn bad_row(opts: &LoadOptions, report: &mut LoadReport, e: RowError) -> Result<()> {
    if opts.policy.skip_bad_rows {
        report.record([e], 1);
        Ok(())
    } else {
        Err(Error::Row(e))
    }
}

fn column_count_error(
    file: &TextFile,
    line: usize,
    expected: usize,
    found: usize,
    delim: &Delimiter,
) -> RowError {
    RowError {
        path: file.path.clone(),
        line,
        column: None,
        field: None,
        message: format!(
            "expected {expected} columns separated by {}, found {found}",
            delim.describe()
        ),
    }
}

/// Layout of a metadata (feature) file.
pub(crate) struct TableFormat<'a> {
    pub delimiter: Delimiter,
    /// Parse CSV quoting (`"a, b"`).
    pub quoting: bool,
    pub has_header: bool,
    /// Feature columns produced by the row function.
    pub columns: &'a [(&'a str, ColumnKind)],
    /// Exact number of fields per row.
    pub n_fields: usize,
}

/// Reads a metadata table where every row is `id` + values built by `row`.
pub(crate) fn read_table(
    file: &TextFile,
    format: &TableFormat<'_>,
    ids: &mut IdMap,
    opts: &LoadOptions,
    report: &mut LoadReport,
    row: impl Fn(&TextFile, usize, &[&[u8]]) -> Result<(String, Vec<Value>), RowError>,
) -> Result<shortlist_core::FeatureTable> {
    let TableFormat {
        delimiter,
        quoting,
        has_header,
        columns,
        n_fields,
    } = format;
    let (quoting, has_header, n_fields) = (*quoting, *has_header, *n_fields);
    let mut builder = TableBuilder::new(columns);
    for_each_record(file, delimiter, quoting, |line, fields| {
        if has_header && line == 1 {
            return Ok(());
        }
        if fields.len() != n_fields {
            return bad_row(
                opts,
                report,
                column_count_error(file, line, n_fields, fields.len(), delimiter),
            );
        }
        let parsed = row(file, line, fields).and_then(|(id, values)| {
            let err = |message: String| RowError {
                path: file.path.clone(),
                line,
                column: Some(1),
                field: Some("id".into()),
                message,
            };
            builder.set(ids, &id, values, err, line)
        });
        match parsed {
            Ok(()) => Ok(()),
            Err(e) => bad_row(opts, report, e),
        }
    })?;
    Ok(builder.finish(ids.len()))
}

pub(crate) fn field<'a>(
    file: &'a TextFile,
    line: usize,
    column: usize,
    name: &'a str,
) -> FieldCtx<'a> {
    FieldCtx {
        path: &file.path,
        line,
        column,
        name,
    }
}

pub(crate) fn text(
    file: &TextFile,
    bytes: &[u8],
    line: usize,
    column: usize,
    name: &str,
) -> Result<String, RowError> {
    Ok(
        decode(bytes, file.encoding, &field(file, line, column, name))?
            .trim()
            .to_owned(),
    )
}

/// Loads GroupLens ML-100k from `dir` (`u.data`, `u.item`, `u.user`).
pub fn load_ml100k(dir: &Path, opts: &LoadOptions, progress: &dyn Progress) -> Result<Loaded> {
    let mut report = LoadReport::default();
    let parsed = read_ratings(
        &dir.join("u.data"),
        Encoding::Utf8,
        "tab-separated user, item, rating, timestamp rows",
        layout(
            ["user_id", "item_id", "rating", "timestamp"],
            Delimiter::Byte(b'\t'),
            false,
        ),
        opts,
        &mut report,
        progress,
    )?;
    let (mut users, mut items) = (parsed.users, parsed.items);

    let item_file = TextFile::read(
        &dir.join("u.item"),
        Encoding::Latin1,
        "'|'-separated movie rows",
    )?;
    let item_features = read_table(
        &item_file,
        &TableFormat {
            delimiter: Delimiter::Byte(b'|'),
            quoting: false,
            has_header: false,
            columns: &[
                ("title", ColumnKind::Text),
                ("genres", ColumnKind::MultiCategorical),
                ("release_year", ColumnKind::Numeric),
            ],
            n_fields: 5 + ML100K_GENRES.len(),
        },
        &mut items,
        opts,
        &mut report,
        |f, line, fields| {
            let id = text(f, fields[0], line, 0, "movie_id")?;
            let title = text(f, fields[1], line, 1, "title")?;
            let date = text(f, fields[2], line, 2, "release_date")?;
            let year = match date.rsplit('-').next() {
                Some(y) if !y.is_empty() => {
                    parse_number(y.as_bytes(), &field(f, line, 2, "release_date"))?
                }
                _ => f64::NAN,
            };
            let mut genres = Vec::new();
            for (k, name) in ML100K_GENRES.iter().enumerate() {
                match fields[5 + k] {
                    b"1" => genres.push((*name).to_owned()),
                    b"0" => {}
                    other => {
                        return Err(field(f, line, 5 + k, name).error(format!(
                            "expected a genre flag 0 or 1, found {:?}",
                            String::from_utf8_lossy(other)
                        )))
                    }
                }
            }
            Ok((
                id,
                vec![Value::Text(title), Value::Multi(genres), Value::Num(year)],
            ))
        },
    )?;

    let user_file = TextFile::read(
        &dir.join("u.user"),
        Encoding::Latin1,
        "'|'-separated user rows",
    )?;
    let user_features = read_table(
        &user_file,
        &TableFormat {
            delimiter: Delimiter::Byte(b'|'),
            quoting: false,
            has_header: false,
            columns: &[
                ("age", ColumnKind::Numeric),
                ("gender", ColumnKind::Categorical),
                ("occupation", ColumnKind::Categorical),
                ("zip_code", ColumnKind::Categorical),
            ],
            n_fields: 5,
        },
        &mut users,
        opts,
        &mut report,
        |f, line, fields| {
            Ok((
                text(f, fields[0], line, 0, "user_id")?,
                vec![
                    Value::Num(parse_number(fields[1], &field(f, line, 1, "age"))?),
                    Value::Cat(text(f, fields[2], line, 2, "gender")?),
                    Value::Cat(text(f, fields[3], line, 3, "occupation")?),
                    Value::Cat(text(f, fields[4], line, 4, "zip_code")?),
                ],
            ))
        },
    )?;

    let features = (user_features, item_features);
    finish(
        movielens_dataset(
            "ml-100k".into(),
            users,
            items,
            parsed.interactions,
            features,
        ),
        report,
        opts,
    )
}

/// Loads GroupLens ML-1M from `dir` (`ratings.dat`, `movies.dat`, `users.dat`; `::`-separated, latin-1).
pub fn load_ml1m(dir: &Path, opts: &LoadOptions, progress: &dyn Progress) -> Result<Loaded> {
    let mut report = LoadReport::default();
    let parsed = read_ratings(
        &dir.join("ratings.dat"),
        Encoding::Latin1,
        "UserID::MovieID::Rating::Timestamp rows",
        layout(
            ["UserID", "MovieID", "Rating", "Timestamp"],
            Delimiter::Seq("::".into()),
            false,
        ),
        opts,
        &mut report,
        progress,
    )?;
    let (mut users, mut items) = (parsed.users, parsed.items);

    let movies = TextFile::read(
        &dir.join("movies.dat"),
        Encoding::Latin1,
        "MovieID::Title::Genres rows",
    )?;
    let item_features = read_table(
        &movies,
        &TableFormat {
            delimiter: Delimiter::Seq("::".into()),
            quoting: false,
            has_header: false,
            columns: &[
                ("title", ColumnKind::Text),
                ("genres", ColumnKind::MultiCategorical),
            ],
            n_fields: 3,
        },
        &mut items,
        opts,
        &mut report,
        |f, line, fields| {
            Ok((
                text(f, fields[0], line, 0, "MovieID")?,
                vec![
                    Value::Text(text(f, fields[1], line, 1, "Title")?),
                    Value::Multi(split_multi(&text(f, fields[2], line, 2, "Genres")?, "|")),
                ],
            ))
        },
    )?;

    let user_path = dir.join("users.dat");
    let user_features = if user_path.exists() {
        let file = TextFile::read(
            &user_path,
            Encoding::Latin1,
            "UserID::Gender::Age::Occupation::Zip-code rows",
        )?;
        read_table(
            &file,
            &TableFormat {
                delimiter: Delimiter::Seq("::".into()),
                quoting: false,
                has_header: false,
                columns: &[
                    ("gender", ColumnKind::Categorical),
                    ("age", ColumnKind::Numeric),
                    ("occupation", ColumnKind::Categorical),
                    ("zip_code", ColumnKind::Categorical),
                ],
                n_fields: 5,
            },
            &mut users,
            opts,
            &mut report,
            |f, line, fields| {
                Ok((
                    text(f, fields[0], line, 0, "UserID")?,
                    vec![
                        Value::Cat(text(f, fields[1], line, 1, "Gender")?),
                        Value::Num(parse_number(fields[2], &field(f, line, 2, "Age"))?),
                        Value::Cat(text(f, fields[3], line, 3, "Occupation")?),
                        Value::Cat(text(f, fields[4], line, 4, "Zip-code")?),
                    ],
                ))
            },
        )?
    } else {
        FeatureTable::default()
    };

    let features = (user_features, item_features);
    finish(
        movielens_dataset("ml-1m".into(), users, items, parsed.interactions, features),
        report,
        opts,
    )
}

/// Loads ML-latest, ML-latest-small or ML-25M from `dir` (`ratings.csv`, `movies.csv`).
pub fn load_ml_latest(
    dir: &Path,
    name: &str,
    opts: &LoadOptions,
    progress: &dyn Progress,
) -> Result<Loaded> {
    let mut report = LoadReport::default();
    let parsed = read_ratings(
        &dir.join("ratings.csv"),
        Encoding::Utf8,
        "a header and userId,movieId,rating,timestamp rows",
        layout(
            ["userId", "movieId", "rating", "timestamp"],
            Delimiter::Byte(b','),
            true,
        ),
        opts,
        &mut report,
        progress,
    )?;
    let (users, mut items) = (parsed.users, parsed.items);
    let movies = TextFile::read(
        &dir.join("movies.csv"),
        Encoding::Utf8,
        "a header and movieId,title,genres rows",
    )?;
    let item_features = read_table(
        &movies,
        &TableFormat {
            delimiter: Delimiter::Byte(b','),
            quoting: true,
            has_header: true,
            columns: &[
                ("title", ColumnKind::Text),
                ("genres", ColumnKind::MultiCategorical),
            ],
            n_fields: 3,
        },
        &mut items,
        opts,
        &mut report,
        |f, line, fields| {
            let genres = text(f, fields[2], line, 2, "genres")?;
            let genres = if genres == "(no genres listed)" {
                Vec::new()
            } else {
                split_multi(&genres, "|")
            };
            Ok((
                text(f, fields[0], line, 0, "movieId")?,
                vec![
                    Value::Text(text(f, fields[1], line, 1, "title")?),
                    Value::Multi(genres),
                ],
            ))
        },
    )?;
    let features = (FeatureTable::default(), item_features);
    finish(
        movielens_dataset(name.to_owned(), users, items, parsed.interactions, features),
        report,
        opts,
    )
}
