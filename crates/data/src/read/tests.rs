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

/// Parses `text` as the file `x.tsv` in the four-column layout split on `delim`: the
/// result, and the report of what was skipped.
fn parse(text: &[u8], delim: u8, policy: RowPolicy) -> (Result<ParsedInteractions>, LoadReport) {
    let mut report = LoadReport::default();
    let p = parse_interactions(
        &file(text),
        &layout(delim),
        policy,
        &mut report,
        &NoProgress,
    );
    (p, report)
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
    let p = parse(&text, b'\t', RowPolicy::default()).0.unwrap();
    assert_eq!(p.interactions.len(), 50_000);
    assert_eq!(p.users.raw(0), "u0");
    assert_eq!(p.users.raw(96), "u96");
    assert_eq!(p.items.len(), 31);
    assert_eq!(p.interactions.timestamps.as_ref().unwrap()[49_999], 49_999);
    assert_eq!(p.users.raw(p.interactions.users[12_345]), "u26");
}

#[test]
fn strict_mode_reports_first_bad_row() {
    let (p, _) = parse(
        b"a\tb\t5\t1\na\tc\tfive\t2\na\td\n",
        b'\t',
        RowPolicy::default(),
    );
    let err = p.err().unwrap();
    assert_eq!(
        err.to_string(),
        "x.tsv:2: column 3 (rating): expected a number, found \"five\""
    );
}

#[test]
fn skip_mode_counts_and_quotes() {
    let (p, report) = parse(
        b"a\tb\t5\t1\na\tc\tfive\t2\na\td\n\na\te\t3\t4\n",
        b'\t',
        RowPolicy {
            skip_bad_rows: true,
        },
    );
    let p = p.unwrap();
    assert_eq!(p.interactions.len(), 2);
    assert_eq!(report.skipped_rows, 2);
    assert_eq!(
        report.examples[1],
        "x.tsv:3: expected 4 columns separated by tab (user, item, rating, ts), found 2"
    );
}

#[test]
fn quoted_csv_goes_through_csv_reader() {
    let (p, _) = parse(
        b"\"u,1\",i1,4.5,10\r\nu2,\"i 2\",3,11\r\n",
        b',',
        RowPolicy::default(),
    );
    let p = p.unwrap();
    assert_eq!(p.users.raw(0), "u,1");
    assert_eq!(p.items.raw(1), "i 2");
    assert_eq!(p.interactions.ratings, vec![4.5, 3.0]);
}

#[test]
fn invalid_utf8_is_named() {
    let (p, _) = parse(b"a\tb\xff\t5\t1\n", b'\t', RowPolicy::default());
    let err = p.err().unwrap().to_string();
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

#[test]
fn short_and_long_ids_intern_to_the_same_numbering() {
    // Ids of up to 7 bytes are compared inline, longer ones by their bytes in the file:
    // ids differing only in the 8th byte or beyond, prefixes of each other, and
    // multi-byte characters around the boundary must stay distinct, numbered by first
    // occurrence.
    let ids = [
        "a",
        "ab",
        "abcdefg",
        "abcdefgh",
        "abcdefgi",
        "abcdefghijklmnop",
        "abcdefghijklmnoq",
        "é",
        "ééé",
        "éééé",
        "1",
        "10",
        "100",
    ];
    let mut text = Vec::new();
    let mut expected = Vec::new();
    for round in 0..3 {
        for (k, id) in ids.iter().enumerate() {
            text.extend_from_slice(format!("{id}\tx{}\t5\t{}\n", k % 2, round).as_bytes());
            expected.push(k as u32);
        }
    }
    let p = parse(&text, b'\t', RowPolicy::default()).0.unwrap();
    assert_eq!(p.users.len(), ids.len());
    for (k, id) in ids.iter().enumerate() {
        assert_eq!(p.users.raw(k as u32), *id);
    }
    assert_eq!(p.interactions.users, expected);
    assert_eq!(p.items.len(), 2);
}
