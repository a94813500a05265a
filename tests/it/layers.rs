//! The layering rule of ARCHITECTURE.md, enforced: data flows `protocol` → `ingest` →
//! `buffer` → `forward`, with `spool` as storage below `forward`; every module names only the
//! crate modules listed for it here, so an import upward (say `spool` taking a type from
//! `forward`) fails this test with the file and line. Only `app`, `main` and `lib`, which wire
//! everything together, are not listed; a list that permits a cycle fails too.

use std::path::{Path, PathBuf};

/// Each restricted module and the only crate modules its code may name.
const ALLOWED: &[(&str, &[&str])] = &[
    ("protocol", &["protocol"]),
    ("model", &[]),
    ("redact", &[]),
    ("backoff", &[]),
    ("files", &[]),
    ("health", &[]),
    // `accounting/events/` included: events never import the components that emit them.
    ("accounting", &["accounting", "config", "model"]),
    ("events", &["accounting"]),
    (
        "buffer",
        &["buffer", "accounting", "config", "model", "events"],
    ),
    (
        "spool",
        &["spool", "accounting", "config", "events", "model", "redact"],
    ),
    ("config", &["config", "files", "redact"]),
    (
        "auth",
        &[
            "auth",
            "accounting",
            "backoff",
            "config",
            "events",
            "files",
            "redact",
        ],
    ),
    (
        "ingest",
        &[
            "ingest",
            "accounting",
            "buffer",
            "config",
            "events",
            "model",
            "protocol",
        ],
    ),
    // Delivery: below it the buffer, the spool (storage), auth; never ingest, telemetry,
    // admin or app.
    (
        "forward",
        &[
            "forward",
            "accounting",
            "auth",
            "backoff",
            "buffer",
            "config",
            "events",
            "health",
            "model",
            "redact",
            "spool",
        ],
    ),
    // Readers of what the others hold: never ingest, admin or app.
    (
        "telemetry",
        &[
            "telemetry",
            "accounting",
            "auth",
            "buffer",
            "config",
            "forward",
            "health",
            "spool",
        ],
    ),
    (
        "admin",
        &[
            "admin",
            "accounting",
            "auth",
            "buffer",
            "config",
            "events",
            "forward",
            "health",
            "ingest",
            "telemetry",
        ],
    ),
    (
        "check",
        &["check", "auth", "config", "forward", "model", "redact"],
    ),
];

/// The first path segment of every `crate::…` the text names, with its line number; a
/// grouped `use crate::{a::X, b}` yields each group member.
fn crate_modules(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for member in group[..end].split(',') {
                    let name: String = member
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        found.push((n + 1, name));
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push((n + 1, name));
            }
        }
    }
    found
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read src dir") {
            rust_files(&entry.expect("dir entry").path(), out);
        }
    } else if path.is_file() && path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_owned());
    }
}

#[test]
fn the_parser_sees_plain_and_grouped_imports() {
    let text =
        "use crate::forward::Flusher;\nuse crate::{model::Datapoint, events};\n// crate::app\n";
    let names: Vec<String> = crate_modules(text).into_iter().map(|(_, m)| m).collect();
    assert_eq!(names, ["forward", "model", "events"]);
}

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    for (module, allowed) in ALLOWED {
        let mut files = Vec::new();
        rust_files(&src.join(module), &mut files);
        rust_files(&src.join(format!("{module}.rs")), &mut files);
        assert!(!files.is_empty(), "src/{module} is gone: update ALLOWED");
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read source");
            for (line, name) in crate_modules(&text) {
                if !allowed.contains(&name.as_str()) {
                    violations.push(format!(
                        "{}:{line}: `{module}` imports crate::{name} (allowed: {allowed:?})",
                        file.strip_prefix(&src).unwrap_or(&file).display()
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// The allowed imports form layers: no module may (through others) import itself, so the
/// table cannot permit a cycle even where today's code has none.
#[test]
fn the_allowed_imports_have_no_cycle() {
    fn reaches(from: &str, to: &str, seen: &mut Vec<String>) -> bool {
        let Some((_, allowed)) = ALLOWED.iter().find(|(m, _)| *m == from) else {
            return false;
        };
        for next in allowed.iter().filter(|n| **n != from) {
            if *next == to {
                return true;
            }
            if !seen.iter().any(|s| s == next) {
                seen.push((*next).to_owned());
                if reaches(next, to, seen) {
                    return true;
                }
            }
        }
        false
    }
    for (module, _) in ALLOWED {
        assert!(
            !reaches(module, module, &mut Vec::new()),
            "`{module}` can reach itself through the allowed imports"
        );
    }
}

/// Every module of the crate is in the table except the three that wire everything together.
#[test]
fn every_module_is_restricted() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&src).expect("read src") {
        let path = entry.expect("dir entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let unrestricted = ["app", "main", "lib"].contains(&stem);
        if !unrestricted && !ALLOWED.iter().any(|(m, _)| *m == stem) {
            missing.push(stem.to_owned());
        }
    }
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "not in ALLOWED: {missing:?}");
}
