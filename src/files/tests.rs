//! Unit tests of `files`, on real files, a FIFO and devices.

use super::*;

fn mkfifo(path: &Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(ok.success());
}

#[test]
fn reads_a_small_regular_file_and_follows_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("k");
    std::fs::write(&f, b"secret\n").unwrap();
    assert_eq!(read_small(&f, 7).unwrap(), b"secret\n");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&f, &link).unwrap();
    assert_eq!(read_small(&link, 64).unwrap(), b"secret\n");
}

#[test]
fn refuses_files_over_the_bound_by_size_and_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("big");
    std::fs::File::create(&f)
        .and_then(|h| h.set_len(1 << 30))
        .unwrap();
    assert!(matches!(
        read_small(&f, 1024),
        Err(FileError::TooLarge(1024))
    ));
    std::fs::write(&f, b"12345678").unwrap();
    assert!(matches!(read_small(&f, 7), Err(FileError::TooLarge(7))));
    // /proc files say they are empty: only the bounded read catches them (as it would a
    // file that grows between the size check and the read).
    let proc = Path::new("/proc/self/smaps");
    assert_eq!(std::fs::metadata(proc).unwrap().len(), 0);
    assert!(matches!(read_small(proc, 16), Err(FileError::TooLarge(16))));
}

#[test]
fn refuses_what_is_not_a_regular_file_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    // The timeout only turns a hang into a failure; the answer must be "not regular".
    let e = read_small_within(&fifo, 64, Duration::from_secs(30)).unwrap_err();
    assert!(matches!(e, FileError::NotRegular("a FIFO")), "{e}");
    assert!(e.to_string().contains("not a regular file"), "{e}");
    let e = read_small(dir.path(), 64).unwrap_err();
    assert!(matches!(e, FileError::NotRegular("a directory")), "{e}");
    let e = read_small(Path::new("/dev/zero"), 64).unwrap_err();
    assert!(
        matches!(e, FileError::NotRegular("a character device")),
        "{e}"
    );
    let e = read_small(&dir.path().join("missing"), 64).unwrap_err();
    assert!(matches!(e, FileError::Io(_)), "{e}");
}

#[tokio::test]
async fn a_read_that_hangs_times_out_and_blocks_no_second_thread() {
    let mut reader = OffThreadReader::default();
    let (release, hung) = std::sync::mpsc::channel::<()>();
    // A read that does not return until released: a hung mount.
    let e = reader
        .run(Duration::from_millis(50), move || hung.recv().is_ok())
        .await
        .unwrap_err();
    assert!(matches!(e, FileError::TimedOut(_)), "{e}");
    let e = reader
        .run(Duration::from_secs(30), || true)
        .await
        .unwrap_err();
    assert!(matches!(e, FileError::Busy), "{e}");
    release.send(()).unwrap();
    // Once the hung read has finished, reads run again (bounded wait: a failsafe only).
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match reader.run(Duration::from_secs(30), || false).await {
            Ok(v) => {
                assert!(!v);
                break;
            }
            Err(FileError::Busy) if std::time::Instant::now() < end => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}
