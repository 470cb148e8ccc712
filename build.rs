//! Compiles the PostgreSQL half of the test suite only when `TEST_DATABASE_URL` is set, and
//! the real full-disk test (it mounts a small tmpfs: root only) only when
//! `TEST_REAL_FULL_DISK=1`; says so when they are not, so a run without them never counts
//! those tests as passed.
//! Also lists the bundled notice templates (`templates/<locale>/<file>`) for the binary to
//! embed.

use std::path::Path;

fn main() {
    bundle_templates();
    println!("cargo::rerun-if-env-changed=TEST_DATABASE_URL");
    println!("cargo::rustc-check-cfg=cfg(pg_tests)");
    println!("cargo::rerun-if-env-changed=TEST_REAL_FULL_DISK");
    println!("cargo::rustc-check-cfg=cfg(real_full_disk_tests)");
    let debug = std::env::var("PROFILE").as_deref() == Ok("debug");
    if std::env::var("TEST_REAL_FULL_DISK").as_deref() == Ok("1") {
        println!("cargo::rustc-cfg=real_full_disk_tests");
    } else if debug {
        println!(
            "cargo::warning=TEST_REAL_FULL_DISK is not 1: the test on a real full disk (a tmpfs it mounts, as root) is not built or run"
        );
    }
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => println!("cargo::rustc-cfg=pg_tests"),
        _ => {
            // Only worth saying when tests are being built.
            if std::env::var("PROFILE").as_deref() == Ok("debug") {
                println!(
                    "cargo::warning=TEST_DATABASE_URL is not set: the PostgreSQL test suite is not built or run (SQLite only)"
                );
            }
        }
    }
}

/// Write `$OUT_DIR/bundled_templates.rs`: `FILES`, every file under `templates/` as
/// (path under `templates/`, contents), sorted. No `templates/` (a dependency-only build
/// stage) yields an empty list.
fn bundle_templates() {
    println!("cargo::rerun-if-changed=templates");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut files = Vec::new();
    if let Ok(locales) = std::fs::read_dir(&root) {
        for locale in locales.flatten().filter(|e| e.path().is_dir()) {
            for file in std::fs::read_dir(locale.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = file.file_name().to_string_lossy().into_owned();
                if file.path().is_file() && !name.starts_with('.') {
                    let rel = format!("{}/{name}", locale.file_name().to_string_lossy());
                    files.push((rel, file.path()));
                }
            }
        }
    }
    files.sort();
    let mut out = String::from("/// Bundled templates: (path under `templates/`, contents).\n");
    out.push_str("pub const FILES: &[(&str, &str)] = &[\n");
    for (rel, path) in files {
        out.push_str(&format!(
            "    ({rel:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest =
        Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR is set")).join("bundled_templates.rs");
    std::fs::write(dest, out).expect("write bundled_templates.rs");
}
