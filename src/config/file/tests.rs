//! Unit tests of `file`.

use super::*;
use crate::config::raw::RawValue;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn format_by_extension() {
    assert_eq!(FileFormat::of(Path::new("a.toml")), FileFormat::Toml);
    assert_eq!(FileFormat::of(Path::new("a.TOML")), FileFormat::Toml);
    assert_eq!(FileFormat::of(Path::new("a.ini")), FileFormat::LegacyIni);
    assert_eq!(FileFormat::of(Path::new("a")), FileFormat::LegacyIni);
}

#[test]
fn toml_types_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "c.toml",
        "tenant = 123\ninterval = 2.5\ndry_run = true\nkey_file = \"k\"\n",
    );
    let layer = load(&path).unwrap();
    assert!(matches!(
        layer.values["tenant"],
        RawValue::Scalar(Scalar::Int(123))
    ));
    assert!(matches!(
        layer.values["interval"],
        RawValue::Scalar(Scalar::Float(f)) if f == 2.5
    ));
    assert!(matches!(
        &layer.values["key"],
        RawValue::File { path: p, via } if *p == dir.path().join("k") && via == "key_file"
    ));
}

#[test]
fn toml_rejects_tables_unknown_keys_and_the_ini_section() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "c.toml", "tennant = \"x\"\n");
    let err = load(&path).unwrap_err().to_string();
    assert!(
        err.contains("\"tennant\"") && err.contains("\"tenant\""),
        "{err}"
    );
    let path = write(
        &dir,
        "d.toml",
        "[blueflood_carbon_forwarder]\ntenant = \"x\"\n",
    );
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains("top level"), "{err}");
    let path = write(&dir, "e.toml", "tenant = [\"x\"]\n");
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains("\"tenant\"") && err.contains("array"), "{err}");
}

#[test]
fn toml_syntax_error_does_not_quote_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "c.toml", "user = \"u\"\nkey = hunter2secret\n");
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains("hunter2secret"), "{err}");
}

#[test]
fn missing_file_is_an_error() {
    let err = load(Path::new("/does/not/exist.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/does/not/exist.toml"), "{err}");
}
