//! Unit tests of `raw`.

use super::*;

fn spec(key: &str) -> &'static KeySpec {
    keys::find(key).unwrap()
}

#[test]
fn later_layers_win_and_origin_is_kept() {
    let mut file = Layer::new(LayerKind::ConfigFile("/c.ini".into()));
    file.set(spec("tenant"), Scalar::Str("from-file".into()));
    file.set(spec("ttl"), Scalar::Int(5));
    let mut cli = Layer::new(LayerKind::CommandLine);
    cli.set(spec("tenant"), Scalar::Str("from-cli".into()));
    let r = resolve(vec![Layer::defaults(), file, cli]).unwrap();
    assert_eq!(r["tenant"].value, Scalar::Str("from-cli".into()));
    assert_eq!(r["tenant"].origin.layer, LayerKind::CommandLine);
    assert_eq!(r["ttl"].value, Scalar::Int(5));
    assert_eq!(
        r["ttl"].origin.layer,
        LayerKind::ConfigFile("/c.ini".into())
    );
    assert_eq!(r["interval"].origin.layer, LayerKind::Defaults);
    assert!(!r.contains_key("key"));
}

#[test]
fn file_wins_within_a_layer_and_higher_plain_value_wins_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    std::fs::write(&path, "from-file\r\n").unwrap();
    let env = vec![
        (
            "BLUEFLOOD_FORWARD_TENANT_FILE".to_owned(),
            path.display().to_string(),
        ),
        ("BLUEFLOOD_FORWARD_TENANT".to_owned(), "plain".to_owned()),
    ];
    let (layer, unknown) = env_layer(&env);
    assert!(unknown.is_empty());
    let r = resolve(vec![Layer::defaults(), layer.clone()]).unwrap();
    assert_eq!(r["tenant"].value, Scalar::Str("from-file".into()));
    assert_eq!(r["tenant"].origin.file.as_ref().unwrap().0, path);

    let mut cli = Layer::new(LayerKind::CommandLine);
    cli.set(spec("tenant"), Scalar::Str("cli".into()));
    let r = resolve(vec![Layer::defaults(), layer, cli]).unwrap();
    assert_eq!(r["tenant"].value, Scalar::Str("cli".into()));
}

#[test]
fn overridden_file_is_not_read() {
    let mut env = Layer::new(LayerKind::Environment);
    env.set_file(spec("key"), "/does/not/exist".into(), "X".into());
    let mut cli = Layer::new(LayerKind::CommandLine);
    cli.set(spec("key"), Scalar::Str("k".into()));
    assert!(resolve(vec![env.clone(), cli]).is_ok());
    let err = resolve(vec![env]).unwrap_err().to_string();
    assert!(
        err.contains("\"key\"") && err.contains("/does/not/exist"),
        "{err}"
    );
}

#[test]
fn only_one_newline_is_stripped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    std::fs::write(&path, "abc\n\n").unwrap();
    assert_eq!(read_value_file(spec("key"), &path, "v").unwrap(), "abc\n");
    std::fs::write(&path, " abc ").unwrap();
    assert_eq!(read_value_file(spec("key"), &path, "v").unwrap(), " abc ");
}

#[test]
fn env_unknown_names_are_reported_and_others_ignored() {
    let env = vec![
        ("BLUEFLOOD_FORWARD_TENNANT".to_owned(), "x".to_owned()),
        ("BLUEFLOOD_FORWARD_CONFIG".to_owned(), "x".to_owned()),
        ("PATH".to_owned(), "/bin".to_owned()),
    ];
    let (layer, unknown) = env_layer(&env);
    assert!(layer.values.is_empty());
    assert_eq!(unknown, vec!["BLUEFLOOD_FORWARD_TENNANT".to_owned()]);
}
