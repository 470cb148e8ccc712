//! Compiles the PostgreSQL half of the test suite only when `TEST_DATABASE_URL` is set, and
//! says so when it is not, so a run without PostgreSQL never counts those tests as passed.

fn main() {
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
