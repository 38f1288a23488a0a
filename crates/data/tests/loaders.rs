//! Every loader on fixture files written by the tests, and each kind of malformed input
//! with its exact message. No network.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::{Path, PathBuf};

use shortlist_core::dataset::{ColumnValues, Feedback};
use shortlist_core::progress::NoProgress;
use shortlist_data::loaders::{self, tsv, Format};
use shortlist_data::{load_path, DuplicatePolicy, LoadOptions, Loaded, RowPolicy};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn load(path: &Path) -> Loaded {
    load_path(path, &LoadOptions::default(), &NoProgress).unwrap()
}

/// Writes `files` (name, bytes) into a new directory and loads it.
fn load_files(files: &[(&str, &[u8])]) -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        write(dir.path(), name, bytes);
    }
    load(dir.path())
}

fn load_err(path: &Path) -> String {
    load_path(path, &LoadOptions::default(), &NoProgress)
        .unwrap_err()
        .to_string()
}

fn skip() -> LoadOptions {
    LoadOptions {
        policy: RowPolicy {
            skip_bad_rows: true,
        },
        ..LoadOptions::default()
    }
}

fn text_col<'a>(l: &'a Loaded, table: &str, name: &str) -> &'a Vec<String> {
    let t = if table == "item" {
        &l.dataset.item_features
    } else {
        &l.dataset.user_features
    };
    match &t.get(name).unwrap().values {
        ColumnValues::Text(v) | ColumnValues::Categorical(v) => v,
        other => panic!("{other:?}"),
    }
}

fn ml100k(dir: &Path) {
    write(
        dir,
        "u.data",
        b"1\t10\t5\t881250949\n2\t10\t3\t881250950\n1\t20\t4\t881250951\n",
    );
    let flags = |on: &[usize]| {
        (0..19)
            .map(|k| if on.contains(&k) { "1" } else { "0" })
            .collect::<Vec<_>>()
            .join("|")
    };
    let mut item = Vec::new();
    item.extend_from_slice(
        format!(
            "10|Toy Story (1995)|01-Jan-1995||http://x|{}\n",
            flags(&[3, 4, 5])
        )
        .as_bytes(),
    );
    // Latin-1: 0xE9 is 'é'.
    item.extend_from_slice(b"20|Cit\xe9 des enfants perdus, La (1995)|01-Jan-1995||http://y|");
    item.extend_from_slice(format!("{}\n", flags(&[8])).as_bytes());
    item.extend_from_slice(format!("30|unknown|||http://z|{}\n", flags(&[0])).as_bytes());
    write(dir, "u.item", &item);
    write(
        dir,
        "u.user",
        b"1|24|M|technician|85711\n2|53|F|other|94043\n",
    );
}

#[test]
fn grouplens_ml100k_with_latin1_titles_and_genre_flags() {
    let dir = tempfile::tempdir().unwrap();
    ml100k(dir.path());
    assert_eq!(
        loaders::detect(dir.path()).unwrap(),
        Format::Ml100k(dir.path().to_path_buf())
    );
    let l = load(dir.path());
    let d = &l.dataset;
    assert_eq!(
        (d.users.len(), d.items.len(), d.interactions.len()),
        (2, 3, 3),
        "item 30 joins the catalogue"
    );
    assert_eq!(
        d.item_title(d.items.get("20").unwrap()),
        "Cité des enfants perdus, La (1995)"
    );
    let ColumnValues::MultiCategorical(genres) = &d.item_features.get("genres").unwrap().values
    else {
        panic!()
    };
    assert_eq!(genres[0], ["Animation", "Children's", "Comedy"]);
    let ColumnValues::Numeric(years) = &d.item_features.get("release_year").unwrap().values else {
        panic!()
    };
    assert_eq!(years[0], 1995.0);
    assert!(years[2].is_nan());
    assert_eq!(
        text_col(&l, "user", "occupation"),
        &vec!["technician".to_string(), "other".into()]
    );
    assert_eq!(d.interactions.timestamps.as_ref().unwrap()[2], 881250951);
    let info = shortlist_data::info::info(d);
    assert_eq!((info.users, info.items, info.catalogue_items), (2, 2, 3));
    assert!((info.rating_mean.unwrap() - 4.0).abs() < 1e-12);
}

#[test]
fn grouplens_ml100k_bad_genre_flag_is_named() {
    let dir = tempfile::tempdir().unwrap();
    ml100k(dir.path());
    let mut item = std::fs::read(dir.path().join("u.item")).unwrap();
    item.extend_from_slice(b"40|X|||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|yes|0\n");
    write(dir.path(), "u.item", &item);
    let e = load_err(dir.path());
    assert!(
        e.ends_with("u.item:4: column 23 (War): expected a genre flag 0 or 1, found \"yes\""),
        "{e}"
    );
}

#[test]
fn grouplens_ml1m_double_colon_latin1() {
    let l = load_files(&[
        (
            "ratings.dat",
            b"1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n",
        ),
        ("movies.dat", b"1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::Animation|Children's|Musical\n5::Caf\xe9 (2000)::Comedy\n"),
        ("users.dat", b"1::F::1::10::48067\n2::M::56::16::70072\n"),
    ]);
    let d = &l.dataset;
    assert_eq!(d.name, "ml-1m");
    assert_eq!(
        (d.users.len(), d.items.len(), d.interactions.len()),
        (2, 3, 3)
    );
    assert_eq!(d.item_title(d.items.get("5").unwrap()), "Café (2000)");
    let ColumnValues::MultiCategorical(g) = &d.item_features.get("genres").unwrap().values else {
        panic!()
    };
    assert_eq!(
        g[d.items.get("661").unwrap() as usize],
        ["Animation", "Children's", "Musical"]
    );
    let ColumnValues::Numeric(age) = &d.user_features.get("age").unwrap().values else {
        panic!()
    };
    assert_eq!(age[1], 56.0);
}

#[test]
fn grouplens_latest_csv_with_quoted_titles_and_half_stars() {
    let dir = tempfile::tempdir().unwrap().keep();
    let latest = dir.join("ml-latest-small");
    std::fs::create_dir(&latest).unwrap();
    write(&latest, "ratings.csv", b"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n2,1,0.5,964982224\n");
    write(
        &latest,
        "movies.csv",
        "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n3,\"Grumpier Old Men, The (1995)\",Comedy|Romance\n9,\"\"\"Great Performances\"\" Cats (1998)\",(no genres listed)\n".as_bytes(),
    );
    let l = load(&latest);
    // The ratings file given by itself stands for its directory (titles included);
    // a ratings.csv without MovieLens' header is not taken for one.
    let ratings = latest.join("ratings.csv");
    assert_eq!(
        loaders::detect(&ratings).unwrap(),
        Format::MlLatest(latest.clone())
    );
    assert_eq!(load(&ratings).dataset, l.dataset);
    let other = dir.join("other");
    std::fs::create_dir(&other).unwrap();
    let p = write(
        &other,
        "ratings.csv",
        b"user_id\titem_id\trating\ttimestamp\na\tb\t1\t2\n",
    );
    assert_eq!(loaders::detect(&p).unwrap(), Format::Tsv(p.clone()));
    let d = &l.dataset;
    assert_eq!(d.name, "ml-latest-small");
    assert_eq!(d.interactions.ratings, vec![4.0, 4.5, 0.5]);
    assert_eq!(
        d.item_title(d.items.get("3").unwrap()),
        "Grumpier Old Men, The (1995)"
    );
    assert_eq!(
        d.item_title(d.items.get("9").unwrap()),
        "\"Great Performances\" Cats (1998)"
    );
    let ColumnValues::MultiCategorical(g) = &d.item_features.get("genres").unwrap().values else {
        panic!()
    };
    assert!(g[d.items.get("9").unwrap() as usize].is_empty());
    let info = shortlist_data::info::info(d);
    assert_eq!(
        info.rating_histogram
            .iter()
            .map(|b| b.rating)
            .collect::<Vec<_>>(),
        vec![0.5, 4.0, 4.5]
    );
}

#[test]
fn recbole_typed_headers() {
    let l = load_files(&[
        ("shop.inter", b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n7\ta1\t3\t881250949.0\n8\ta2\t4.5\t881250950\n"),
        ("shop.item", b"item_id:token\tmovie_title:token_seq\tprice:float\ttags:token_seq\temb:float_seq\na1\tBig Box\t9.5\tred blue\t0.1 0.2\na2\tSmall\t\tgreen\t0.3 0.4\n"),
        ("shop.user", b"user_id:token\tcountry:token\n7\tNL\n"),
    ]);
    let d = &l.dataset;
    assert_eq!(d.name, "shop");
    assert_eq!(d.interactions.timestamps, Some(vec![881250949, 881250950]));
    assert_eq!(d.title_column.as_deref(), Some("movie_title"));
    assert_eq!(d.item_title(1), "Small");
    let names: Vec<&str> = d
        .item_features
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["movie_title", "price", "tags"],
        "float_seq is reported, not loaded"
    );
    let ColumnValues::MultiCategorical(tags) = &d.item_features.get("tags").unwrap().values else {
        panic!()
    };
    assert_eq!(tags[0], ["red", "blue"]);
    let ColumnValues::Numeric(price) = &d.item_features.get("price").unwrap().values else {
        panic!()
    };
    assert!(price[1].is_nan());
    assert_eq!(
        text_col(&l, "user", "country"),
        &vec!["NL".to_string(), String::new()]
    );
}

#[test]
fn recbole_copy_of_ml100k_is_normalised() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "ml-100k.inter",
        b"user_id:token\titem_id:token\trating:float\ttimestamp:float\n196\t242\t3\t881250949\n",
    );
    write(dir.path(), "ml-100k.item", b"item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n242\tKolya\t1996\tComedy\n");
    write(dir.path(), "ml-100k.user", b"user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n196\t49\tM\twriter\t55105\n");
    let l = load(dir.path());
    assert_eq!(l.dataset.name, "ml-100k");
    assert_eq!(l.dataset.item_title(0), "Kolya (1996)");
    assert!(l.dataset.item_features.get("genres").is_some());
    let ColumnValues::Numeric(age) = &l.dataset.user_features.get("age").unwrap().values else {
        panic!()
    };
    assert_eq!(age[0], 49.0);
}

#[test]
fn recbole_header_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "x.inter",
        b"user_id:token\titem:whatever\n1\t2\n",
    );
    assert_eq!(
        load_err(&p),
        format!(
            "{}: line 1, column 2: expected a typed header field NAME:TYPE with TYPE token, token_seq, float or float_seq, found \"item:whatever\"",
            p.display()
        )
    );
    let p = write(dir.path(), "y.inter", b"user_id:token\tthing:token\n1\t2\n");
    assert_eq!(
        load_err(&p),
        format!(
            "{}: expected a item_id column in the header, found user_id:token, thing:token",
            p.display()
        )
    );
}

const SCHEMA: &str = r#"
name = "shop"
[interactions]
path = "events.csv"
user = "customer"
item = "sku"
timestamp = "ts"

[items]
path = "products.tsv"
id = "sku"
title = "name"
features = [
  { name = "name", type = "text" },
  { name = "category", type = "categorical" },
  { name = "tags", type = "multi-categorical", separator = ";" },
  { name = "price", type = "numeric" },
]
"#;

fn product_log(dir: &Path) -> PathBuf {
    write(
        dir,
        "events.csv",
        "customer,sku,ts,channel\nalice@example.com,SKU-001/α,1700000000,web\n\"bob, jr\",SKU-002,1700000100,app\nalice@example.com,SKU-002,1700000200,web\n".as_bytes(),
    );
    write(
        dir,
        "products.tsv",
        "sku\tname\tcategory\ttags\tprice\nSKU-001/α\tRed Mug\tkitchen\tred;ceramic\t12.5\nSKU-002\tBlue Pan\tkitchen\tblue\t30\nSKU-003\tLamp\tliving\t\t\n".as_bytes(),
    );
    write(dir, "schema.toml", SCHEMA.as_bytes())
}

#[test]
fn schema_described_product_log_with_string_ids() {
    let dir = tempfile::tempdir().unwrap();
    let schema = product_log(dir.path());
    let l = load(&schema);
    let d = &l.dataset;
    assert_eq!(d.name, "shop");
    assert_eq!(d.feedback, Feedback::Implicit);
    assert_eq!(d.interactions.ratings, vec![1.0; 3]);
    assert_eq!(d.users.raw_ids(), ["alice@example.com", "bob, jr"]);
    assert_eq!(d.items.raw_ids(), ["SKU-001/α", "SKU-002", "SKU-003"]);
    assert_eq!(d.item_title(0), "Red Mug");
    let ColumnValues::MultiCategorical(tags) = &d.item_features.get("tags").unwrap().values else {
        panic!()
    };
    assert_eq!(tags[0], ["red", "ceramic"]);
    assert!(tags[2].is_empty());
    // The directory holding schema.toml loads the same way.
    let again = load(dir.path()).dataset;
    assert_eq!(
        (&again.users, &again.items, &again.interactions),
        (&d.users, &d.items, &d.interactions)
    );
}

#[test]
fn schema_errors_name_the_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let schema = product_log(dir.path());
    write(
        dir.path(),
        "schema.toml",
        SCHEMA
            .replace("user = \"customer\"", "user = \"client\"")
            .as_bytes(),
    );
    let e = load_err(&schema);
    assert_eq!(
        e,
        format!(
            "{}: interactions.user: no column \"client\" in {} (its columns: customer, sku, ts, channel)",
            schema.display(),
            dir.path().join("events.csv").display()
        )
    );
    write(
        dir.path(),
        "schema.toml",
        SCHEMA
            .replace("timestamp = \"ts\"", "timestamp = \"ts\"\nratng = \"r\"")
            .as_bytes(),
    );
    let e = load_err(&schema);
    assert!(
        e.starts_with(&format!(
            "{}: invalid schema: TOML parse error at line 3",
            schema.display()
        )),
        "{e}"
    );
    assert!(e.contains("unknown field `ratng`"), "{e}");
}

#[test]
fn malformed_rows_give_exact_messages() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        ("cols.tsv", b"user_id\titem_id\trating\ttimestamp\n1\t2\t3\t4\n1\t2\t3\n", ":3: expected 4 columns separated by tab (user_id, item_id, rating, timestamp), found 3"),
        ("rating.tsv", b"user_id\titem_id\trating\ttimestamp\n1\t2\tgood\t4\n", ":2: column 3 (rating): expected a number, found \"good\""),
        ("time.tsv", b"user_id\titem_id\trating\ttimestamp\n1\t2\t3\tyesterday\n", ":2: column 4 (timestamp): expected an integer Unix timestamp in seconds, found \"yesterday\""),
        ("bytes.tsv", b"user_id\titem_id\trating\ttimestamp\n1\t\xff\xfe\t3\t4\n", ":2: column 2 (item_id): invalid UTF-8 (byte 0xff at offset 0 of the field); declare encoding = \"latin-1\" if the file is ISO-8859-1"),
    ];
    for (name, bytes, expected) in cases {
        let p = write(dir.path(), name, bytes);
        assert_eq!(load_err(&p), format!("{}{expected}", p.display()), "{name}");
    }
}

#[test]
fn empty_missing_and_headerless_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "empty.tsv", b"\n  \n");
    assert_eq!(
        load_err(&p),
        format!("{}: the file is empty (expected the header \"user_id\\titem_id\\trating\\ttimestamp\" and interaction rows)", p.display())
    );
    let p = write(
        dir.path(),
        "only-header.tsv",
        b"user_id\titem_id\trating\ttimestamp\n",
    );
    assert_eq!(
        load_err(&p),
        format!("{}: no interactions were loaded", p.display())
    );
    let p = write(dir.path(), "noheader.tsv", b"1\t2\t3\t4\n");
    assert!(
        load_err(&p).contains("line 1: expected the header"),
        "{}",
        load_err(&p)
    );
    let missing = dir.path().join("nope");
    assert_eq!(
        load_err(&missing),
        format!("{}: no such file or directory", missing.display())
    );
    // A directory of ML-100k without u.item: the missing file is named.
    let ml = dir.path().join("ml");
    std::fs::create_dir(&ml).unwrap();
    write(&ml, "u.data", b"1\t2\t3\t4\n");
    let e = load_err(&ml);
    assert!(e.contains(&ml.join("u.item").display().to_string()), "{e}");
    // u.data given by itself is read as its directory: the same missing file is named.
    assert_eq!(
        loaders::detect(&ml.join("u.data")).unwrap(),
        Format::Ml100k(ml.clone())
    );
    assert_eq!(load_err(&ml.join("u.data")), e);
}

#[test]
fn skip_bad_rows_counts_and_quotes_the_first_few() {
    let dir = tempfile::tempdir().unwrap();
    let mut body = b"user_id\titem_id\trating\ttimestamp\n".to_vec();
    for k in 0..20 {
        if k % 3 == 0 {
            body.extend_from_slice(format!("u{k}\ti{k}\tbad\t{k}\n").as_bytes());
        } else {
            body.extend_from_slice(format!("u{k}\ti{k}\t4\t{k}\n").as_bytes());
        }
    }
    let p = write(dir.path(), "log.tsv", &body);
    let l = load_path(&p, &skip(), &NoProgress).unwrap();
    assert_eq!(l.dataset.interactions.len(), 13);
    assert_eq!(l.report.skipped_rows, 7);
    assert_eq!(l.report.examples.len(), 5);
    assert_eq!(
        l.report.examples[0],
        format!(
            "{}:2: column 3 (rating): expected a number, found \"bad\"",
            p.display()
        )
    );
}

#[test]
fn split_files_round_trip_and_share_ids() {
    let dir = tempfile::tempdir().unwrap();
    let schema = product_log(dir.path());
    let l = load(&schema);
    let train = dir.path().join("train.tsv");
    let test = dir.path().join("test.tsv");
    let bytes = tsv::write_rows(&train, &l.dataset, &[0, 1]).unwrap();
    assert_eq!(
        String::from_utf8(bytes).unwrap(),
        "user_id\titem_id\trating\ttimestamp\nalice@example.com\tSKU-001/α\t1\t1700000000\nbob, jr\tSKU-002\t1\t1700000100\n"
    );
    tsv::write_rows(&test, &l.dataset, &[2]).unwrap();
    let s = tsv::load_split(&train, &test, &LoadOptions::default(), &NoProgress).unwrap();
    assert_eq!((s.train.clone(), s.test.clone()), (vec![0, 1], vec![2]));
    let d = &s.dataset;
    assert_eq!(d.users.raw(d.interactions.users[2]), "alice@example.com");
    assert_eq!(
        d.interactions.users[2], d.interactions.users[0],
        "same user index across files"
    );
}

#[test]
fn duplicate_policies_apply_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "d.tsv",
        b"user_id\titem_id\trating\ttimestamp\na\tx\t2\t10\na\tx\t5\t20\nb\tx\t3\t30\n",
    );
    for (policy, ratings, removed) in [
        (DuplicatePolicy::KeepAll, vec![2.0, 5.0, 3.0], 0),
        (DuplicatePolicy::KeepLast, vec![5.0, 3.0], 1),
        (DuplicatePolicy::Average, vec![3.5, 3.0], 1),
    ] {
        let l = load_path(
            &p,
            &LoadOptions {
                duplicates: policy,
                ..LoadOptions::default()
            },
            &NoProgress,
        )
        .unwrap();
        assert_eq!(l.dataset.interactions.ratings, ratings, "{policy:?}");
        assert_eq!(l.report.duplicates_removed, removed);
    }
}

#[test]
fn attach_features_matches_split_ids_by_raw_id() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("shop");
    std::fs::create_dir(&src).unwrap();
    write(
        &src,
        "shop.inter",
        b"user_id:token\titem_id:token\trating:float\n7\ta1\t3\n8\ta2\t4\n",
    );
    // a3: in the catalogue, in neither split file.
    write(&src, "shop.item", b"item_id:token\tmovie_title:token_seq\tprice:float\ttags:token_seq\na1\tBig Box\t9.5\tred blue\na2\tSmall\t2\tgreen\na3\tNew\t7\tred\n");
    write(
        &src,
        "shop.user",
        b"user_id:token\tcountry:token\n7\tNL\n8\tFR\n",
    );
    let source = load(&src).dataset;
    // The split orders ids differently and has an unknown user and item.
    let train = write(
        dir.path(),
        "train.tsv",
        b"user_id\titem_id\trating\ttimestamp\n8\ta2\t4\t1\n9\ta1\t3\t2\n",
    );
    let test = write(
        dir.path(),
        "test.tsv",
        b"user_id\titem_id\trating\ttimestamp\n7\tzz\t5\t3\n",
    );
    let mut split = tsv::load_split(&train, &test, &LoadOptions::default(), &NoProgress).unwrap();
    let (nu, ni) = tsv::attach_features(&mut split, &source);
    assert_eq!((nu, ni), (2, 2));
    let d = &split.dataset;
    assert_eq!(d.users.raw_ids(), ["8", "9", "7"]);
    let ColumnValues::Categorical(country) = &d.user_features.get("country").unwrap().values else {
        panic!()
    };
    assert_eq!(country, &["FR", "", "NL"]);
    // The catalogue's other items follow the split's, without interactions.
    assert_eq!(d.items.raw_ids(), ["a2", "a1", "zz", "a3"]);
    assert_eq!(d.interactions.len(), 3);
    let ColumnValues::Numeric(price) = &d.item_features.get("price").unwrap().values else {
        panic!()
    };
    assert_eq!(price.len(), 4);
    assert_eq!(&price[..2], &[2.0, 9.5]);
    assert!(price[2].is_nan());
    assert_eq!(price[3], 7.0);
    assert_eq!(d.item_title(1), "Big Box");
    assert_eq!(d.item_title(2), "zz");
    assert_eq!(d.item_title(3), "New");
}
