//! Unit tests of `credentials`.

use super::*;

#[test]
fn debug_redacts() {
    let c = Credentials::new("alice", "hunter2");
    let text = format!("{c:?}");
    assert!(
        text.contains("alice") && !text.contains("hunter2"),
        "{text}"
    );
}

#[test]
fn offer_counts_rotations_not_the_first_load() {
    let s = CredentialStore::new("test", None);
    assert!(s.current().is_none());
    assert!(s.offer(Credentials::new("u", "a")));
    assert!(!s.offer(Credentials::new("u", "a")));
    assert_eq!(s.status().reloads, 0);
    assert!(s.offer(Credentials::new("u", "b")));
    let st = s.status();
    assert_eq!((st.reloads, st.loaded), (1, true));
    assert!(st.last_rotation.is_some());
    assert_eq!(s.generation(), 2);
}

#[test]
fn failures_keep_the_last_good_values() {
    let s = CredentialStore::new("test", Some(Credentials::new("u", "a")));
    s.failed("gone".into());
    s.failed("gone".into());
    let st = s.status();
    assert_eq!(
        (st.reload_failures, st.last_error.as_deref()),
        (2, Some("gone"))
    );
    assert_eq!(
        s.current().map(|(_, c)| c.user.clone()).as_deref(),
        Some("u")
    );
    assert!(!s.offer(Credentials::new("u", "a")));
    assert_eq!(
        s.status().last_error,
        None,
        "readable again clears the error"
    );
}

#[test]
fn file_values_trim_one_newline_and_refuse_empty() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("k");
    std::fs::write(&p, "abc\n\n").unwrap();
    assert_eq!(read_value_file(&p).unwrap(), "abc\n");
    std::fs::write(&p, "\n").unwrap();
    assert!(read_value_file(&p).unwrap_err().contains("empty"));
    std::fs::write(&p, "SECRET\r\n").unwrap();
    assert_eq!(read_value_file(&p).unwrap(), "SECRET");
    let missing = read_value_file(&dir.path().join("nope")).unwrap_err();
    assert!(missing.contains("nope"), "{missing}");
}

#[test]
fn file_values_refuse_oversized_and_special_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("apiKey");
    std::fs::File::create(&p)
        .and_then(|f| f.set_len(files::MAX_VALUE_FILE_BYTES + 1))
        .unwrap();
    let e = read_value_file(&p).unwrap_err();
    assert!(e.contains("apiKey") && e.contains("65536"), "{e}");
    let e = read_value_file(dir.path()).unwrap_err();
    assert!(e.contains("not a regular file"), "{e}");
}

#[tokio::test(start_paused = false)]
async fn polling_alone_picks_up_a_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("apiKey");
    std::fs::write(&key, "one\n").unwrap();
    let source = FileSource {
        user: Part::Fixed(SecretString::from("u".to_owned())),
        key: Part::File(key.clone()),
    };
    let store = Arc::new(CredentialStore::new(
        "t",
        Some(Credentials::new("u", "one")),
    ));
    // No watcher: only the poll loop, as on a file system without notifications.
    let task = tokio::spawn({
        let store = store.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut reader = OffThreadReader::default();
            loop {
                tick.tick().await;
                source.reload(&store, &mut reader).await;
            }
        }
    });
    std::fs::write(&key, "two\n").unwrap();
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.generation() == 0 && tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    let (_, c) = store.current().unwrap();
    assert_eq!(c.secret.expose_secret(), "two");
    assert_eq!(store.status().reloads, 1);
}
