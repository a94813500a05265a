//! Unit tests of `lock`.

use super::*;

#[test]
fn a_locked_directory_refuses_a_second_lock_until_released() {
    let tmp = tempfile::tempdir().unwrap();
    let held = lock(tmp.path()).unwrap();
    assert!(matches!(lock(tmp.path()), Err(StoreError::Locked { .. })));
    // `flock` belongs to the open handle: another handle of the directory closing (as
    // the fsync of the directory does) leaves it held.
    drop(File::open(tmp.path()).unwrap());
    assert!(matches!(lock(tmp.path()), Err(StoreError::Locked { .. })));
    drop(held);
    lock(tmp.path()).unwrap();
}

#[test]
fn the_probe_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    probe_writable(tmp.path()).unwrap();
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    assert!(probe_writable(&tmp.path().join("missing")).is_err());
}
