//! Compiles the PostgreSQL half of the test suite only when `TEST_DATABASE_URL` is set, and
//! says so when it is not, so a run without PostgreSQL never counts those tests as passed.
//! Also lists the bundled notice templates (`templates/<locale>/<file>`) for the binary to
//! embed.

use std::path::Path;

fn main() {
    bundle_templates();
    println!("cargo::rerun-if-env-changed=TEST_DATABASE_URL");
    println!("cargo::rustc-check-cfg=cfg(pg_tests)");
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
