//! Secret files rewritten under a running forwarder the two ways they are in production: a
//! plain rewrite (a new file renamed over the old one) and the kubelet's update of a mounted
//! Secret volume (a new `..<stamp>` directory swapped in through the `..data` symlink).

use std::path::Path;

/// A plain rewrite of the file at `path`: `value` and a newline, renamed over the old file.
pub fn write_secret(path: &Path, value: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{value}\n")).expect("write secret");
    std::fs::rename(&tmp, path).expect("rename secret");
}

pub fn kubelet_write(dir: &Path, stamp: &str, user: &str, key: &str) {
    kubelet_write_opt(dir, stamp, user, Some(key));
}

/// A Secret volume as the kubelet lays it out: `..<stamp>/` with the values, `..data` a
/// symlink to it, and `username`/`apiKey` symlinks through `..data`.
/// `key: None` leaves the key out (a Secret whose data key was removed).
pub fn kubelet_write_opt(dir: &Path, stamp: &str, user: &str, key: Option<&str>) {
    let data = dir.join(format!("..{stamp}"));
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("username"), format!("{user}\n")).unwrap();
    if let Some(key) = key {
        std::fs::write(data.join("apiKey"), format!("{key}\n")).unwrap();
    }
    // The atomic swap: a temporary symlink renamed over `..data`.
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{stamp}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for name in ["username", "apiKey"] {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
}
