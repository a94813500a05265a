//! Unit tests of `line`.

use super::*;

fn ok(line: &str) -> (String, f64, f64) {
    let p = parse_line(line.as_bytes(), 4096).unwrap();
    (p.name.into_owned(), p.value, p.timestamp)
}

#[test]
fn basic_line() {
    assert_eq!(ok("a.b.c 1.5 1700000000"), ("a.b.c".into(), 1.5, 1.7e9));
}

#[test]
fn name_is_borrowed() {
    let p = parse_line(b"a.b 1 2", 100).unwrap();
    assert!(matches!(p.name, Cow::Borrowed("a.b")));
}

#[test]
fn whitespace_runs_tabs_and_cr() {
    assert_eq!(ok("  a.b \t 2\t\t3  \r"), ("a.b".into(), 2.0, 3.0));
    assert_eq!(ok("a 1 2\r"), ("a".into(), 1.0, 2.0));
}

#[test]
fn tagged_name_passes_through() {
    assert_eq!(ok("a.b;env=prod;dc=x 1 2").0, "a.b;env=prod;dc=x");
}

#[test]
fn python_float_forms() {
    assert_eq!(ok("a 1e3 -1").1, 1000.0);
    assert_eq!(ok("a 1e3 -1").2, -1.0);
    assert_eq!(ok("a .5 5.").1, 0.5);
    assert_eq!(ok("a +2 1").1, 2.0);
    assert!(ok("a nan 1").1.is_nan());
    assert!(ok("a NaN 1").1.is_nan());
    assert_eq!(ok("a inf 1").1, f64::INFINITY);
    assert_eq!(ok("a -Infinity 1").1, f64::NEG_INFINITY);
    assert_eq!(ok("a 1e400 1").1, f64::INFINITY);
}

#[test]
fn bad_numbers() {
    assert_eq!(parse_line(b"a x 1", 100), Err(PointError::BadValue));
    assert_eq!(parse_line(b"a 1 x", 100), Err(PointError::BadTimestamp));
    assert_eq!(parse_line(b"a 1e 1", 100), Err(PointError::BadValue));
    assert_eq!(parse_line(b"a 0x10 1", 100), Err(PointError::BadValue));
    assert_eq!(parse_line(b"a 1_0 1", 100), Err(PointError::BadValue));
}

#[test]
fn field_count() {
    for l in [
        &b""[..],
        b"   ",
        b"\r",
        b"a",
        b"a 1",
        b"a 1 2 3",
        b"a\x0b1 2",
    ] {
        assert_eq!(parse_line(l, 100), Err(PointError::FieldCount), "{l:?}");
    }
}

#[test]
fn name_errors() {
    assert_eq!(
        parse_line(b"\xff\xfe 1 2", 100),
        Err(PointError::NameNotUtf8)
    );
    assert_eq!(parse_line(b"abcd 1 2", 3), Err(PointError::NameTooLong));
    assert!(parse_line(b"abc 1 2", 3).is_ok());
    let long = format!("{} 1 2", "x".repeat(10_000));
    assert_eq!(
        parse_line(long.as_bytes(), 4096),
        Err(PointError::NameTooLong)
    );
}

#[test]
fn non_ascii_name() {
    assert_eq!(ok("métrique.温度 1 2").0, "métrique.温度");
}

#[test]
fn blank() {
    assert!(is_blank(b""));
    assert!(is_blank(b" \t\r"));
    assert!(!is_blank(b" a "));
}

#[test]
fn splitting() {
    let v: Vec<&[u8]> = split_lines(b"a 1 2\nb 3 4\n").collect();
    assert_eq!(v, vec![&b"a 1 2"[..], b"b 3 4"]);
    let v: Vec<&[u8]> = split_lines(b"a 1 2\n\nb 3 4").collect();
    assert_eq!(v, vec![&b"a 1 2"[..], b"", b"b 3 4"]);
    assert_eq!(split_lines(b"").count(), 0);
    assert_eq!(split_lines(b"\n").count(), 1);
    let v: Vec<&[u8]> = split_lines(b"a\r\n").collect();
    assert_eq!(v, vec![&b"a\r"[..]]);
}
