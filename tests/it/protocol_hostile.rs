//! Hostile-input tests for the protocol decoders: code-execution pickles, truncation, nesting
//! and memo bombs, lying length fields, wrong shapes, random bytes. Also the probes that show
//! why `serde-pickle` was not used (its failures are asserted, so the evidence stays current).

use std::borrow::Cow;

use blueflood_forward::protocol::PointError;
use blueflood_forward::protocol::RawPoint;
use blueflood_forward::protocol::line::parse_line;
use blueflood_forward::protocol::pickle::{FrameError, PickleLimits, decode_frame};

type Out<'a> = Vec<Result<RawPoint<'a>, PointError>>;

/// Decodes into a vector that already holds one sentinel, and checks the contract on `Err`:
/// the vector is left exactly as it was.
fn decode(payload: &[u8]) -> Result<Out<'_>, FrameError> {
    decode_with(payload, &PickleLimits::default())
}

fn decode_with<'a>(payload: &'a [u8], limits: &PickleLimits) -> Result<Out<'a>, FrameError> {
    let sentinel: Result<RawPoint<'a>, PointError> = Err(PointError::FieldCount);
    let mut out = vec![sentinel.clone()];
    match decode_frame(payload, limits, &mut out) {
        Ok(()) => {
            assert_eq!(out.remove(0), sentinel, "existing entries must be kept");
            Ok(out)
        }
        Err(e) => {
            assert_eq!(out, vec![sentinel], "out must be untouched on Err");
            Err(e)
        }
    }
}

fn forbidden(payload: &[u8]) -> &'static str {
    match decode(payload) {
        Err(FrameError::ForbiddenOpcode { name, .. }) => name,
        other => panic!("expected a forbidden opcode, got {other:?}"),
    }
}

fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/pickle")
            .join(name),
    )
    .unwrap()
}

fn frames(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        out.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    out
}

fn carbon_frame() -> Vec<u8> {
    frames(&read_fixture("carbon-relay-1.1.10-py3.11.bin")).remove(0)
}

// ---------------------------------------------------------------- code execution

#[test]
fn protocol0_os_system_is_refused() {
    let marker = std::env::temp_dir().join("pwned");
    let _ = std::fs::remove_file(&marker);
    assert_eq!(
        forbidden(b"cos\nsystem\n(S'touch /tmp/pwned'\ntR."),
        "GLOBAL"
    );
    assert!(!marker.exists());
}

#[test]
fn protocol2_and_4_reduce_payloads_are_refused() {
    // Real `pickle.dumps` output of an object whose __reduce__ is (os.system, ('touch ...',)).
    let p2 = b"\x80\x02cposix\nsystem\nq\x00X\x10\x00\x00\x00touch /tmp/pwnedq\x01\x85q\x02Rq\x03.";
    assert_eq!(forbidden(p2), "GLOBAL");
    let p4 = b"\x80\x04\x95+\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94\x8c\x10touch /tmp/pwned\x94\x85\x94R\x94.";
    assert_eq!(forbidden(p4), "STACK_GLOBAL");
}

#[test]
fn every_object_building_opcode_is_refused() {
    let cases: &[(&[u8], &str)] = &[
        (b"(S'touch'\nios\nsystem\n.", "INST"),
        (b"(]o.", "OBJ"),
        (b"]])\x81.", "NEWOBJ"),
        (b"])}\x92.", "NEWOBJ_EX"),
        (b"]]b.", "BUILD"),
        (b"]]R.", "REDUCE"),
        (b"P123\n.", "PERSID"),
        (b"]Q.", "BINPERSID"),
        (b"\x82\x01.", "EXT1"),
        (b"\x83\x01\x00.", "EXT2"),
        (b"\x84\x01\x00\x00\x00.", "EXT4"),
        (
            b"X\x02\x00\x00\x00osX\x06\x00\x00\x00system\x93.",
            "STACK_GLOBAL",
        ),
        (b"\x97.", "NEXT_BUFFER"),
        (b"]\x98.", "READONLY_BUFFER"),
    ];
    for (payload, name) in cases {
        assert_eq!(forbidden(payload), *name, "{payload:?}");
    }
    let e = decode(b"]]R.").unwrap_err();
    assert_eq!(e.reason(), "forbidden_opcode");
    assert!(e.to_string().contains("REDUCE"));
}

#[test]
fn forbidden_opcode_after_valid_points_yields_no_points() {
    // A valid list of points, then an object hidden in the last element.
    let p = b"\x80\x02]q\x00X\x01\x00\x00\x00aq\x01K\x01c__main__\nO\nq\x02)\x81q\x03\x86q\x04\x86q\x05a.";
    assert_eq!(forbidden(p), "GLOBAL");
    let mut good = carbon_frame();
    let stop = good.pop();
    assert_eq!(stop, Some(b'.'));
    good.extend_from_slice(b"]]R.");
    assert_eq!(forbidden(&good), "REDUCE");
}

// ---------------------------------------------------------------- truncation

#[test]
fn every_cut_of_a_valid_frame_is_truncated() {
    let mut inputs = vec![carbon_frame()];
    inputs.push(frames(&read_fixture("py2-proto0.bin")).remove(0));
    inputs.push(frames(&read_fixture("py3-generated-proto0.bin")).remove(0));
    inputs.push(frames(&read_fixture("py3-generated-proto4.bin")).remove(0));
    inputs.push(frames(&read_fixture("py3-generated-proto5.bin")).remove(0));
    for frame in &inputs {
        assert!(decode(frame).is_ok());
        for cut in 0..frame.len() {
            assert_eq!(
                decode(&frame[..cut]),
                Err(FrameError::Truncated),
                "cut at {cut} of {}",
                frame.len()
            );
        }
    }
}

#[test]
fn lying_lengths_do_not_allocate() {
    // BINUNICODE claiming 64 MiB with three bytes present.
    assert_eq!(
        decode(b"\x80\x02X\x00\x00\x00\x04abc"),
        Err(FrameError::Truncated)
    );
    assert_eq!(
        decode(b"\x8d\xff\xff\xff\xff\xff\xff\xff\x7fabc"),
        Err(FrameError::Truncated)
    );
    assert_eq!(decode(b"B\xff\xff\xff\xffab"), Err(FrameError::Truncated));
    assert_eq!(
        decode(b"\x8b\x00\x00\x00\x7f\x01"),
        Err(FrameError::Truncated)
    );
    assert_eq!(
        decode(b"\x8b\xff\xff\xff\xff\x01").unwrap_err().reason(),
        "malformed"
    );
    assert_eq!(
        decode(b"T\xff\xff\xff\xffab").unwrap_err().reason(),
        "malformed"
    );
}

// ---------------------------------------------------------------- nesting bombs

/// A 1 MiB pickle of lists nested 512 Ki deep (`EMPTY_LIST`s, then as many `APPEND`s).
fn list_nesting_bomb() -> Vec<u8> {
    let n = 512 * 1024;
    let mut p = vec![b']'; n];
    p.extend(std::iter::repeat_n(b'a', n - 1));
    p.push(b'.');
    p
}

#[test]
fn one_mib_list_nesting_bomb_is_too_deep() {
    assert_eq!(decode(&list_nesting_bomb()), Err(FrameError::TooDeep));
}

#[test]
fn mark_and_tuple_bombs_are_too_deep() {
    let p = vec![b'('; 1 << 20];
    assert_eq!(decode(&p), Err(FrameError::TooDeep));
    let mut p = vec![b')'];
    p.extend(std::iter::repeat_n(0x85u8, 1 << 20));
    p.push(b'.');
    assert_eq!(decode(&p), Err(FrameError::TooDeep));
    // MARK list MARK list ... the proto-0 way.
    let mut p = Vec::new();
    for _ in 0..100_000 {
        p.extend_from_slice(b"(");
    }
    assert_eq!(decode(&p), Err(FrameError::TooDeep));
}

#[test]
fn list_appended_into_itself_is_bounded() {
    let mut p = b"]q\x00".to_vec();
    for _ in 0..100_000 {
        p.extend_from_slice(b"h\x00a");
    }
    p.push(b'.');
    assert_eq!(decode(&p), Err(FrameError::TooDeep));
}

#[test]
fn depth_limit_is_configurable_and_exact() {
    // [(name, (ts, value))] has depth 3.
    let p = b"]X\x01\x00\x00\x00aK\x01K\x02\x86\x86a.";
    let limits = |max_depth| PickleLimits {
        max_depth,
        ..PickleLimits::default()
    };
    assert_eq!(decode_with(p, &limits(3)).unwrap().len(), 1);
    assert_eq!(decode_with(p, &limits(2)), Err(FrameError::TooDeep));
}

// ---------------------------------------------------------------- memo abuse

fn binunicode(s: &[u8]) -> Vec<u8> {
    let mut v = vec![b'X'];
    v.extend_from_slice(&(s.len() as u32).to_le_bytes());
    v.extend_from_slice(s);
    v
}

/// A list holding one memoised 60 KiB string, then `fetches` memo fetches of it.
fn memo_fetches(fetches: usize) -> Vec<u8> {
    let mut p = b"\x80\x02]q\x00".to_vec();
    p.extend(binunicode(&vec![b'x'; 60 * 1024]));
    p.extend_from_slice(b"q\x010(");
    for _ in 0..fetches {
        p.extend_from_slice(b"h\x01");
    }
    p.extend_from_slice(b"e.");
    p
}

#[test]
fn big_memoised_string_fetched_100k_times_is_shared() {
    let p = memo_fetches(100_000);
    let out = decode(&p).unwrap();
    assert_eq!(out.len(), 100_000);
    assert!(out.iter().all(|r| *r == Err(PointError::Shape)));
}

#[test]
fn memoised_point_fetched_many_times_borrows_its_name() {
    let mut p = b"\x80\x02]q\x00(".to_vec();
    p.extend(binunicode(&vec![b'n'; 4000]));
    p.extend_from_slice(b"K\x01K\x02\x86\x86q\x01");
    for _ in 0..200_000 {
        p.extend_from_slice(b"h\x01");
    }
    p.extend_from_slice(b"e.");
    let out = decode(&p).unwrap();
    assert_eq!(out.len(), 200_001);
    for r in &out {
        let point = r.as_ref().unwrap();
        assert!(matches!(point.name, Cow::Borrowed(_)));
        assert_eq!(point.name.len(), 4000);
    }
}

#[test]
fn memoised_escaped_name_copies_are_charged() {
    // An escaped (owned) 4000-byte name fetched 200k times would be 800 MB of copies.
    let mut p = b"(S'".to_vec();
    p.extend(std::iter::repeat_n(b'\\', 1).chain(std::iter::repeat_n(b'n', 1)));
    p.extend(vec![b'n'; 3999]);
    p.extend_from_slice(b"'\n(I1\nI2\nttp1\n0](");
    for _ in 0..200_000 {
        p.extend_from_slice(b"g1\n");
    }
    p.extend_from_slice(b"e.");
    assert_eq!(decode(&p), Err(FrameError::TooManyItems));
    // The same frame with a few fetches is fine, and the name was unescaped.
    let mut small = p[..p.iter().position(|&b| b == b']').unwrap() + 2].to_vec();
    small.extend_from_slice(b"g1\ng1\ne.");
    let out = decode(&small).unwrap();
    assert_eq!(out.len(), 2);
    let name = &out[0].as_ref().unwrap().name;
    assert!(name.starts_with('\n') && name.len() == 4000);
}

#[test]
fn dup_and_get_floods_hit_the_item_limit() {
    let mut p = b"]".to_vec();
    p.extend(std::iter::repeat_n(b'2', 1_100_000));
    assert_eq!(decode(&p), Err(FrameError::TooManyItems));
    let mut p = b"]q\x00(".to_vec();
    for _ in 0..1_100_000 {
        p.extend_from_slice(b"h\x00");
    }
    assert_eq!(decode(&p), Err(FrameError::TooManyItems));
}

#[test]
fn memo_limits() {
    // A memo id beyond max_memo.
    assert_eq!(
        decode(b"]r\xff\xff\xff\xff."),
        Err(FrameError::MemoTooLarge)
    );
    assert_eq!(decode(b"]p99999999\n."), Err(FrameError::MemoTooLarge));
    // More entries than max_memo.
    let limits = PickleLimits {
        max_memo: 10,
        ..PickleLimits::default()
    };
    let mut p = b"]".to_vec();
    p.extend(std::iter::repeat_n(0x94, 11));
    p.push(b'.');
    assert_eq!(decode_with(&p, &limits), Err(FrameError::MemoTooLarge));
    assert_eq!(decode(b"]h\x05."), Err(FrameError::MissingMemo(5)));
}

// ---------------------------------------------------------------- shapes

#[test]
fn top_level_must_be_a_list() {
    for p in [
        &b"\x80\x02}."[..],
        b"\x80\x02K\x01.",
        b"N.",
        b").",
        b"\x80\x02X\x01\x00\x00\x00a.",
        b"\x8f.",
    ] {
        assert_eq!(decode(p), Err(FrameError::NotAList), "{p:?}");
    }
    assert_eq!(FrameError::NotAList.reason(), "not_a_list");
}

#[test]
fn wrong_element_shapes_are_per_point() {
    // [ (a,(1,2,3)), (a,1), 5, {}, (a,(1,2)), ((a,),(1,2)), (a,(1,2),3), (a,(None,1)), (a,(1,None)) ]
    let a = binunicode(b"a");
    let mut p = b"\x80\x02](".to_vec();
    let push = |p: &mut Vec<u8>, body: &[u8]| p.extend_from_slice(body);
    push(&mut p, &a);
    push(&mut p, b"K\x01K\x02K\x03\x87\x86");
    push(&mut p, &a);
    push(&mut p, b"K\x01\x86");
    push(&mut p, b"K\x05");
    push(&mut p, b"}");
    push(&mut p, &a);
    push(&mut p, b"K\x01K\x02\x86\x86");
    push(&mut p, &a);
    push(&mut p, b"\x85K\x01K\x02\x86\x86");
    push(&mut p, &a);
    push(&mut p, b"K\x01K\x02\x86K\x03\x87");
    push(&mut p, &a);
    push(&mut p, b"NK\x01\x86\x86");
    push(&mut p, &a);
    push(&mut p, b"K\x01N\x86\x86");
    push(&mut p, b"K\x07K\x01K\x02\x86\x86");
    push(&mut p, b"e.");
    let out = decode(&p).unwrap();
    use PointError::*;
    let got: Vec<Result<(), PointError>> = out
        .iter()
        .map(|r| r.as_ref().map(|_| ()).map_err(|e| *e))
        .collect();
    assert_eq!(
        got,
        vec![
            Err(Shape),
            Err(Shape),
            Err(Shape),
            Err(Shape),
            Ok(()),
            Err(Shape),
            Err(Shape),
            Err(BadTimestamp),
            Err(BadValue),
            Err(Shape),
        ]
    );
}

#[test]
fn names_pass_through_control_characters() {
    let mut p = b"](".to_vec();
    p.extend(binunicode(b"a\nb\0c\x01"));
    p.extend_from_slice(b"K\x01K\x02\x86\x86e.");
    let out = decode(&p).unwrap();
    assert_eq!(out[0].as_ref().unwrap().name, "a\nb\0c\x01");
}

#[test]
fn ten_thousand_character_names_are_too_long() {
    let mut p = b"](".to_vec();
    p.extend(binunicode(&vec![b'n'; 10_000]));
    p.extend_from_slice(b"K\x01K\x02\x86\x86e.");
    assert_eq!(decode(&p).unwrap(), vec![Err(PointError::NameTooLong)]);
    let line = format!("{} 1 2", "n".repeat(10_000));
    assert_eq!(
        parse_line(line.as_bytes(), 4096),
        Err(PointError::NameTooLong)
    );
}

// ---------------------------------------------------------------- random input

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Bytes biased towards real opcodes so the VM gets past the first byte.
const ALPHABET: &[u8] = b"()012.FIJKLMNSTUVXaeghjlpqrt]}su\x80\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x94\x95\x96BCG\x00\x01\x02\xff\n'\"\\";

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let limits = PickleLimits::default();
    let mut ok = 0;
    for i in 0..100_000 {
        let len = (rng.next() % 300) as usize;
        let input: Vec<u8> = (0..len)
            .map(|_| {
                let r = rng.next();
                if i % 2 == 0 {
                    ALPHABET[(r % ALPHABET.len() as u64) as usize]
                } else {
                    r as u8
                }
            })
            .collect();
        let mut out = Vec::new();
        if decode_frame(&input, &limits, &mut out).is_ok() {
            ok += 1;
        } else {
            assert!(out.is_empty());
        }
        let _ = parse_line(&input, 4096);
    }
    // Not a threshold on quality, just proof the generator reaches success paths at all.
    assert!(ok > 0, "no random input decoded");
}

#[test]
fn mutated_valid_frames_never_panic() {
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for name in [
        "py3-generated-proto0.bin",
        "py3-generated-proto2.bin",
        "py3-generated-proto4.bin",
        "py2-proto1.bin",
    ] {
        seeds.push(frames(&read_fixture(name)).remove(0));
    }
    let mut rng = XorShift(12345);
    let limits = PickleLimits::default();
    let (mut ok, mut err) = (0, 0);
    for i in 0..20_000 {
        let mut f = seeds[i % seeds.len()].clone();
        for _ in 0..=(rng.next() % 4) {
            let at = (rng.next() % f.len() as u64) as usize;
            match rng.next() % 3 {
                0 => f[at] = rng.next() as u8,
                1 => {
                    f.remove(at);
                }
                _ => f.insert(at, ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize]),
            }
        }
        let mut out = Vec::new();
        match decode_frame(&f, &limits, &mut out) {
            Ok(()) => ok += 1,
            Err(_) => {
                assert!(out.is_empty());
                err += 1;
            }
        }
    }
    assert!(ok > 0 && err > 0, "mutations should produce both outcomes");
}

// ---------------------------------------------------------------- serde-pickle probes

/// serde-pickle deep-clones memoised values on every fetch: a 64 KiB frame expands ~1000x.
#[test]
fn serde_pickle_memo_fetch_deep_copies() {
    let p = memo_fetches(1000);
    let v = serde_pickle::value_from_slice(&p, serde_pickle::DeOptions::new()).unwrap();
    let serde_pickle::Value::List(items) = v else {
        panic!("not a list")
    };
    let bytes: usize = items
        .iter()
        .map(|i| match i {
            serde_pickle::Value::String(s) => s.len(),
            _ => 0,
        })
        .sum();
    eprintln!(
        "serde-pickle: {} byte frame -> {bytes} bytes of strings",
        p.len()
    );
    assert!(bytes >= 1000 * 60 * 1024);
}

/// serde-pickle resolves some globals instead of refusing them.
#[test]
fn serde_pickle_resolves_builtin_globals() {
    let p = b"c__builtin__\nset\n(]tR.";
    let v = serde_pickle::value_from_slice(p, serde_pickle::DeOptions::new());
    assert!(matches!(v, Ok(serde_pickle::Value::Set(_))), "{v:?}");
    assert_eq!(forbidden(p), "GLOBAL");
}

const PROBE_ENV: &str = "BFF_SERDE_PICKLE_DEPTH_PROBE";

/// Runs in a child process only: decodes the 1 MiB nesting bomb with serde-pickle.
#[test]
fn serde_pickle_depth_probe_child() {
    if std::env::var_os(PROBE_ENV).is_none() {
        return;
    }
    let n = 512 * 1024;
    let mut p = vec![b']'; n];
    p.extend(std::iter::repeat_n(b'a', n - 1));
    p.push(b'.');
    let v = serde_pickle::value_from_slice(&p, serde_pickle::DeOptions::new());
    drop(v);
    eprintln!("serde-pickle survived the nesting bomb");
}

/// serde-pickle has no depth bound: the 1 MiB bomb kills the process with a stack overflow.
/// Probed in a child process so this test binary survives.
#[test]
fn serde_pickle_overflows_stack_on_deep_nesting() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "protocol_hostile::serde_pickle_depth_probe_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PROBE_ENV, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "serde-pickle survived: {stderr}");
    assert!(
        stderr.contains("overflow"),
        "child died differently: {stderr}"
    );
    // Our decoder refuses the same input.
    assert_eq!(decode(&list_nesting_bomb()), Err(FrameError::TooDeep));
}

/// serde-pickle refuses a list holding the same memoised tuple twice (CPython output for
/// `[s, s]`), which senders do produce; we decode it.
#[test]
fn serde_pickle_refuses_repeated_memoised_tuple() {
    let p = b"\x80\x02]q\x00(X\x01\x00\x00\x00aq\x01K\x01G@\x04\x00\x00\x00\x00\x00\x00\x86q\x02\x86q\x03h\x03e.";
    let theirs = serde_pickle::value_from_slice(p, serde_pickle::DeOptions::new());
    assert!(theirs.is_err(), "{theirs:?}");
    let ours = decode(p).unwrap();
    assert_eq!(ours.len(), 2);
    assert_eq!(ours[0], ours[1]);
    assert_eq!(ours[1].as_ref().unwrap().value, 2.5);
}
