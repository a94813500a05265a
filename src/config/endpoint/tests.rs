//! Unit tests of `endpoint`.

use super::*;

fn ok(text: &str, t: Transport) -> (u16, Option<IpAddr>) {
    let e = parse(text, t).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(e.transport, t);
    (e.port, e.interface)
}

#[test]
fn accepted_forms() {
    use Transport::*;
    let v4: IpAddr = "127.0.0.1".parse().unwrap();
    let v6: IpAddr = "::1".parse().unwrap();
    assert_eq!(ok("tcp:2004", Tcp), (2004, None));
    assert_eq!(ok("tcp:port=2004", Tcp), (2004, None));
    assert_eq!(ok("tcp:0", Tcp), (0, None));
    assert_eq!(ok("tcp:2004:interface=127.0.0.1", Tcp), (2004, Some(v4)));
    assert_eq!(ok("tcp:2004:interface=::1", Tcp), (2004, Some(v6)));
    assert_eq!(ok("tcp:2004:interface=\\:\\:1", Tcp), (2004, Some(v6)));
    assert_eq!(ok("tcp:2004:interface=[::1]", Tcp), (2004, Some(v6)));
    assert_eq!(ok("tcp:interface=::1:port=2004", Tcp), (2004, Some(v6)));
    assert_eq!(ok("udp:2003", Udp), (2003, None));
    assert_eq!(
        ok("udp:2003:interface=0.0.0.0", Udp),
        (2003, Some("0.0.0.0".parse().unwrap()))
    );
}

#[test]
fn rejected_forms() {
    use Transport::*;
    for (text, t) in [
        ("udp:2003", Tcp),
        ("tcp:2004", Udp),
        ("unix:/tmp/s", Tcp),
        ("tcp", Tcp),
        ("tcp:", Tcp),
        ("tcp:70000", Tcp),
        ("tcp:-1", Tcp),
        ("tcp:2004:backlog=5", Tcp),
        ("tcp:2004:interface=localhost", Tcp),
        ("tcp:2004:2005", Tcp),
        ("tcp:2004:port=2005", Tcp),
        ("2004", Tcp),
        ("", Tcp),
    ] {
        assert!(parse(text, t).is_err(), "{text} should be rejected");
    }
}
