//! Says plainly whether the PostgreSQL half of the suite was built into this run. It is not
//! a test and counts as none: the PostgreSQL tests are compiled only when
//! `TEST_DATABASE_URL` is set (see build.rs), so without it they are absent, never "passed".

fn main() {
    // `cargo nextest` lists tests first; there are none here.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if cfg!(pg_tests) {
        println!("PostgreSQL suite: built and run (TEST_DATABASE_URL is set)");
    } else {
        println!(
            "PostgreSQL suite: NOT RUN. Set TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test to include it."
        );
    }
}
