//! Unit tests of `pickle`.

use super::*;

fn run(p: &[u8]) -> Result<Vec<Result<RawPoint<'_>, PointError>>, FrameError> {
    let mut out = Vec::new();
    decode_frame(p, &PickleLimits::default(), &mut out).map(|()| out)
}

/// Decodes `[(name, (ts, value))]` where the element is spelled by `elem`.
fn one(elem: &[u8]) -> Result<RawPoint<'static>, PointError> {
    let mut p = b"](".to_vec();
    p.extend_from_slice(elem);
    p.extend_from_slice(b"e.");
    let mut out = run(&p).unwrap();
    assert_eq!(out.len(), 1);
    out.remove(0).map(|r| RawPoint {
        name: Cow::Owned(r.name.into_owned()),
        ..r
    })
}

fn value_of(v: &[u8]) -> Result<f64, PointError> {
    let mut e = b"X\x01\x00\x00\x00aK\x01".to_vec();
    e.extend_from_slice(v);
    e.extend_from_slice(b"\x86\x86");
    one(&e).map(|p| p.value)
}

fn name_of(n: &[u8]) -> Result<String, PointError> {
    let mut e = n.to_vec();
    e.extend_from_slice(b"K\x01K\x02\x86\x86");
    one(&e).map(|p| p.name.into_owned())
}

#[test]
fn carbon_relay_shape() {
    let p = b"\x80\x02]q\x00(X\x03\x00\x00\x00a.bq\x01GA\xd9\x00\x00\x00\x00\x00\x00G?\xf8\x00\x00\x00\x00\x00\x00\x86q\x02\x86q\x03e.";
    let out = run(p).unwrap();
    let pt = out[0].as_ref().unwrap();
    assert!(matches!(pt.name, Cow::Borrowed("a.b")));
    assert_eq!(pt.timestamp, 1_677_721_600.0);
    assert_eq!(pt.value, 1.5);
}

#[test]
fn integer_opcodes() {
    assert_eq!(value_of(b"K\xff"), Ok(255.0));
    assert_eq!(value_of(b"M\xff\xff"), Ok(65535.0));
    assert_eq!(value_of(b"J\xff\xff\xff\xff"), Ok(-1.0));
    assert_eq!(value_of(b"I-42\n"), Ok(-42.0));
    assert_eq!(value_of(b"I01\n"), Ok(1.0));
    assert_eq!(value_of(b"I00\n"), Ok(0.0));
    assert_eq!(value_of(b"I1\n"), Ok(1.0));
    assert_eq!(value_of(b"I0x10\n"), Ok(16.0));
    assert_eq!(value_of(b"L123L\n"), Ok(123.0));
    assert_eq!(value_of(b"L123\n"), Ok(123.0));
    assert_eq!(
        value_of(b"L1180591620717411315769L\n"),
        Ok(1_180_591_620_717_411_315_769.0)
    );
    assert_eq!(value_of(b"\x8a\x00"), Ok(0.0));
    assert_eq!(value_of(b"\x8a\x02\xff\x00"), Ok(255.0));
    assert_eq!(value_of(b"\x8a\x01\xff"), Ok(-1.0));
    // 2**70 + 12345 and -(2**65), as CPython writes them.
    assert_eq!(
        value_of(b"\x8a\x09\x39\x30\x00\x00\x00\x00\x00\x00\x40"),
        Ok(1_180_591_620_717_411_315_769.0)
    );
    assert_eq!(
        value_of(b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\xfe"),
        Ok(-36_893_488_147_419_103_232.0)
    );
    assert_eq!(value_of(b"\x8b\x01\x00\x00\x00\x07"), Ok(7.0));
    // Beyond f64: Python's float() raises, so the point is rejected.
    let mut huge = b"\x8b\x00\x01\x00\x00".to_vec();
    huge.extend(std::iter::repeat_n(0x11u8, 255));
    huge.push(0x01);
    assert_eq!(value_of(&huge), Err(PointError::BadValue));
    let big = format!("I{}\n", "9".repeat(400));
    assert_eq!(value_of(big.as_bytes()), Err(PointError::BadValue));
    assert_eq!(run(b"I12x\n.").unwrap_err().reason(), "malformed");
}

#[test]
fn float_bool_none_opcodes() {
    assert_eq!(value_of(b"F1.25\n"), Ok(1.25));
    assert!(value_of(b"Fnan\n").unwrap().is_nan());
    assert_eq!(value_of(b"F-inf\n"), Ok(f64::NEG_INFINITY));
    assert_eq!(value_of(b"G@\x04\x00\x00\x00\x00\x00\x00"), Ok(2.5));
    assert_eq!(value_of(b"\x88"), Ok(1.0));
    assert_eq!(value_of(b"\x89"), Ok(0.0));
    assert_eq!(value_of(b"N"), Err(PointError::BadValue));
    assert_eq!(run(b"Fabc\n.").unwrap_err().reason(), "malformed");
}

#[test]
fn string_values_parse_like_float() {
    assert_eq!(value_of(b"X\x03\x00\x00\x001.5"), Ok(1.5));
    assert_eq!(value_of(b"U\x04 2e3"), Ok(2000.0));
    assert_eq!(value_of(b"C\x01\x37"), Ok(7.0));
    assert_eq!(value_of(b"S'8'\n"), Ok(8.0));
    assert_eq!(value_of(b"X\x03\x00\x00\x00abc"), Err(PointError::BadValue));
    assert_eq!(value_of(b")"), Err(PointError::BadValue));
}

#[test]
fn bad_timestamp() {
    let e = b"X\x01\x00\x00\x00aNK\x01\x86\x86";
    assert_eq!(one(e), Err(PointError::BadTimestamp));
    let e = b"X\x01\x00\x00\x00aX\x01\x00\x00\x00zK\x01\x86\x86";
    assert_eq!(one(e), Err(PointError::BadTimestamp));
}

#[test]
fn name_opcodes() {
    assert_eq!(name_of(b"X\x02\x00\x00\x00ab").unwrap(), "ab");
    assert_eq!(name_of(b"\x8c\x02ab").unwrap(), "ab");
    assert_eq!(
        name_of(b"\x8d\x02\x00\x00\x00\x00\x00\x00\x00ab").unwrap(),
        "ab"
    );
    assert_eq!(name_of(b"U\x02ab").unwrap(), "ab");
    assert_eq!(name_of(b"T\x02\x00\x00\x00ab").unwrap(), "ab");
    assert_eq!(name_of(b"C\x02ab").unwrap(), "ab");
    assert_eq!(name_of(b"B\x02\x00\x00\x00ab").unwrap(), "ab");
    assert_eq!(
        name_of(b"\x8e\x02\x00\x00\x00\x00\x00\x00\x00ab").unwrap(),
        "ab"
    );
    assert_eq!(
        name_of(b"\x96\x02\x00\x00\x00\x00\x00\x00\x00ab").unwrap(),
        "ab"
    );
    assert_eq!(name_of(b"U\x02\xc3\xa9").unwrap(), "é");
    assert_eq!(name_of(b"Va.b\n").unwrap(), "a.b");
    assert_eq!(name_of(b"S'a.b'\n").unwrap(), "a.b");
    assert_eq!(name_of(b"S\"a'b\"\n").unwrap(), "a'b");
}

#[test]
fn name_errors() {
    assert_eq!(name_of(b"U\x02\xff\xfe"), Err(PointError::NameNotUtf8));
    assert_eq!(name_of(b"U\x00"), Err(PointError::EmptyName));
    assert_eq!(name_of(b"K\x01"), Err(PointError::Shape));
    assert_eq!(name_of(b"N"), Err(PointError::Shape));
    let mut long = b"X\x01\x10\x00\x00".to_vec();
    long.extend(std::iter::repeat_n(b'a', 4097));
    assert_eq!(name_of(&long), Err(PointError::NameTooLong));
    let mut ok = b"X\x00\x10\x00\x00".to_vec();
    ok.extend(std::iter::repeat_n(b'a', 4096));
    assert_eq!(name_of(&ok).map(|n| n.len()), Ok(4096));
    // Lone surrogate (Python pickles these with surrogatepass).
    assert_eq!(
        name_of(b"X\x03\x00\x00\x00\xed\xa0\x80"),
        Err(PointError::NameNotUtf8)
    );
    assert_eq!(name_of(b"Va\\ud800\n"), Err(PointError::NameNotUtf8));
}

#[test]
fn string_escapes() {
    assert_eq!(
        name_of(
            br"S'a\nb'
"
        )
        .unwrap(),
        "a\nb"
    );
    assert_eq!(
        name_of(b"S'\\\\\\'\\\"\\t\\r\\x41\\101\\0\\q'\n").unwrap(),
        "\\'\"\t\rAA\0\\q"
    );
    assert_eq!(name_of(b"S'\\xc3\\xa9'\n").unwrap(), "é");
    for bad in [
        &b"S'abc\n."[..],
        b"Sabc\n.",
        b"S'\n.",
        b"S'a\\'\n.",
        b"S'\\x4'\n.",
    ] {
        assert_eq!(run(bad).unwrap_err().reason(), "bad_string", "{bad:?}");
    }
}

#[test]
fn raw_unicode_escapes() {
    assert_eq!(name_of(b"V\\u00e9t\\u00e9\n").unwrap(), "été");
    assert_eq!(name_of(b"V\xe9\n").unwrap(), "é");
    assert_eq!(name_of(b"V\\U0001f600\n").unwrap(), "😀");
    assert_eq!(name_of(b"Va\\u005cb\n").unwrap(), "a\\b");
    assert_eq!(name_of(b"V\\\\u0041\n").unwrap(), "\\\\u0041");
    assert_eq!(name_of(b"V\\\\\\u0041\n").unwrap(), "\\\\A");
    assert_eq!(name_of(b"V\\x41\n").unwrap(), "\\x41");
    for bad in [&b"V\\u12\n."[..], b"V\\uzzzz\n.", b"V\\U00110000\n."] {
        assert_eq!(run(bad).unwrap_err().reason(), "bad_string", "{bad:?}");
    }
}

#[test]
fn tuples_and_lists() {
    // The pair and the data may be tuples or lists, built any way.
    assert!(one(b"X\x01\x00\x00\x00a(K\x01K\x02t\x86").is_ok());
    assert!(one(b"(X\x01\x00\x00\x00a(K\x01K\x02lt").is_ok());
    assert!(one(b"(X\x01\x00\x00\x00a]K\x01aK\x02al").is_ok());
    assert!(one(b"]X\x01\x00\x00\x00aaK\x01K\x02\x86a").is_ok());
    assert_eq!(one(b")"), Err(PointError::Shape));
    assert_eq!(one(b"X\x01\x00\x00\x00a\x85"), Err(PointError::Shape));
    assert_eq!(
        one(b"X\x01\x00\x00\x00aK\x01K\x02K\x03\x87\x86"),
        Err(PointError::Shape)
    );
    // Top level built by LIST.
    assert_eq!(run(b"(l.").unwrap().len(), 0);
    assert_eq!(run(b"].").unwrap().len(), 0);
}

#[test]
fn stack_opcodes() {
    // POP drops the 1, POP_MARK drops the marked 1 and 2.
    let p = b"]K\x010(K\x01K\x021X\x01\x00\x00\x00aK\x01K\x02\x86\x86a.";
    assert_eq!(run(p).unwrap().len(), 1);
    // DUP of the point appends it twice.
    let p = b"](X\x01\x00\x00\x00aK\x01K\x02\x86\x862e.";
    assert_eq!(run(p).unwrap().len(), 2);
    // POP on an empty segment discards the mark (Python 3).
    assert_eq!(run(b"](0.").unwrap().len(), 0);
    assert_eq!(run(b"0.").unwrap_err().reason(), "malformed");
    assert_eq!(run(b"(.").unwrap_err().reason(), "malformed");
    assert_eq!(run(b"a.").unwrap_err().reason(), "malformed");
    assert_eq!(run(b"]e.").unwrap_err().reason(), "malformed");
    assert_eq!(run(b"K\x01K\x02a.").unwrap_err().reason(), "malformed");
    assert_eq!(run(b"]\x86.").unwrap_err().reason(), "malformed");
    // Items below a MARK are invisible: TUPLE2 cannot reach across it.
    assert_eq!(run(b"]K\x01(K\x02\x86.").unwrap_err().reason(), "malformed");
    assert_eq!(run(b"1.").unwrap_err().reason(), "malformed");
}

#[test]
fn memo_opcodes() {
    // PUT/GET (text), BINPUT/BINGET, LONG_BINPUT/LONG_BINGET, MEMOIZE/BINGET.
    for p in [
        &b"(X\x01\x00\x00\x00ap1\n0g1\nK\x01K\x02\x86\x86l."[..],
        b"(X\x01\x00\x00\x00aq\x070h\x07K\x01K\x02\x86\x86l.",
        b"(X\x01\x00\x00\x00ar\x00\x01\x00\x000j\x00\x01\x00\x00K\x01K\x02\x86\x86l.",
        b"(X\x01\x00\x00\x00a\x940h\x00K\x01K\x02\x86\x86l.",
    ] {
        let out = run(p).unwrap();
        assert_eq!(out[0].as_ref().unwrap().name, "a", "{p:?}");
    }
    // A memoised list is shared, not copied: appending after GET shows in both.
    let p = b"]q\x00h\x00X\x01\x00\x00\x00aK\x01K\x02\x86\x86a0.";
    assert_eq!(run(p).unwrap().len(), 1);
    assert_eq!(run(b"]g3\n."), Err(FrameError::MissingMemo(3)));
    assert_eq!(run(b"]p-1\n.").unwrap_err().reason(), "malformed");
    assert_eq!(run(b"p0\n.").unwrap_err().reason(), "malformed");
}

#[test]
fn proto_and_frame_headers() {
    assert!(run(b"\x80\x05\x95\x02\x00\x00\x00\x00\x00\x00\x00].").is_ok());
    assert_eq!(run(b"\x80\x06]."), Err(FrameError::UnsupportedProtocol(6)));
    assert_eq!(
        FrameError::UnsupportedProtocol(6).reason(),
        "unsupported_protocol"
    );
    // Bytes after STOP are ignored, as pickle.loads does.
    assert!(run(b"].garbage").is_ok());
}

#[test]
fn dicts_and_sets_are_opaque() {
    assert_eq!(run(b"}."), Err(FrameError::NotAList));
    assert_eq!(run(b"(d."), Err(FrameError::NotAList));
    assert_eq!(run(b"\x8f."), Err(FrameError::NotAList));
    assert_eq!(run(b"(\x91."), Err(FrameError::NotAList));
    let p = b"](}K\x01K\x02s(K\x01K\x02u\x8f(K\x01\x90(K\x01K\x02de.";
    let out = run(p).unwrap();
    assert_eq!(out, vec![Err(PointError::Shape); 3]);
    assert_eq!(run(b"](K\x01d.").unwrap_err().reason(), "malformed");
    assert_eq!(run(b"]K\x01K\x02s.").unwrap_err().reason(), "malformed");
    assert_eq!(run(b"}(K\x01u.").unwrap_err().reason(), "malformed");
    assert_eq!(run(b"](K\x01\x90.").unwrap_err().reason(), "malformed");
}

#[test]
fn frame_error_reasons() {
    let cases = [
        (run(b"c"), "forbidden_opcode"),
        (run(b"\xff"), "bad_opcode"),
        (run(b""), "truncated"),
        (run(b"K"), "truncated"),
        (run(b"]h\x00."), "missing_memo"),
        (run(b"N."), "not_a_list"),
        (run(&[b'('; 17]), "too_deep"),
        (run(b"]r\x00\x00\x00\x10"), "memo_too_large"),
    ];
    for (r, reason) in cases {
        assert_eq!(r.unwrap_err().reason(), reason);
    }
    let mut out = Vec::new();
    let tight = PickleLimits {
        max_items: 3,
        ..PickleLimits::default()
    };
    let e = decode_frame(b"]K\x01K\x02K\x03.", &tight, &mut out).unwrap_err();
    assert_eq!(e.reason(), "too_many_items");
    assert_eq!(FrameError::Malformed("x").reason(), "malformed");
    assert_eq!(FrameError::BadString("x").reason(), "bad_string");
}

#[test]
fn err_leaves_out_untouched_and_ok_appends() {
    let mut out = vec![Err(PointError::Shape)];
    let limits = PickleLimits::default();
    assert!(decode_frame(b"]c", &limits, &mut out).is_err());
    assert_eq!(out.len(), 1);
    decode_frame(
        b"](X\x01\x00\x00\x00aK\x01K\x02\x86\x86e.",
        &limits,
        &mut out,
    )
    .unwrap();
    assert_eq!(out.len(), 2);
    assert!(out[1].is_ok());
}

#[test]
fn owned_name_budget_truncates_output() {
    // Three copies of an escaped name fit; the charge for copies is what trips the limit.
    let p = b"(S'a\\n'\n(I1\nI2\nttp0\n0(g0\ng0\ng0\nl.";
    let limits = |max_items| PickleLimits {
        max_items,
        ..PickleLimits::default()
    };
    let mut out = vec![Err(PointError::Shape)];
    decode_frame(p, &limits(1000), &mut out).unwrap();
    assert_eq!(out.len(), 4);
    // Find the smallest budget that still decodes, then one less fails only in emit.
    let need = (1..1000)
        .find(|&n| decode_frame(p, &limits(n), &mut Vec::new()).is_ok())
        .unwrap();
    let mut out = vec![Err(PointError::Shape)];
    assert_eq!(
        decode_frame(p, &limits(need - 1), &mut out),
        Err(FrameError::TooManyItems)
    );
    assert_eq!(out.len(), 1);
}
