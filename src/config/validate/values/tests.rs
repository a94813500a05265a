use super::*;

#[test]
fn sizes() {
    assert_eq!(parse_size("268435456"), Some(268_435_456));
    assert_eq!(parse_size("256MiB"), Some(256 << 20));
    assert_eq!(parse_size("256 mib"), Some(256 << 20));
    assert_eq!(parse_size("1GB"), Some(1_000_000_000));
    assert_eq!(parse_size("64k"), Some(65_536));
    assert_eq!(parse_size("1.5MiB"), None);
    assert_eq!(parse_size("MiB"), None);
    assert_eq!(parse_size("-1"), None);
    assert_eq!(parse_size("99999999999999999999GiB"), None);
}
