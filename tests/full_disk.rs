//! A real full disk, not a size cap: the database on a 3 MiB tmpfs that the test mounts
//! (root only: built only with `TEST_REAL_FULL_DISK=1`, which `.ci/run` sets). Writes fail
//! with SQLITE_FULL from the file system itself, in the WAL, in checkpoints and in the file.
//! The promise is the one of `store_faults.rs`: no 2xx for an event that a restart would
//! not find stored; and once space comes back, every refused delivery is stored on retry.
#![cfg(real_full_disk_tests)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::faults::*;
use common::*;

/// A tmpfs mounted at a directory of its own, unmounted when dropped.
struct SmallDisk {
    at: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("disk");
        std::fs::create_dir(&at).unwrap();
        mount(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            &at,
        );
        Self { at, _dir: dir }
    }

    fn grow(&self, size: &str) {
        mount(&["-o", &format!("remount,size={size}")], &self.at);
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = as_root("umount").arg("-l").arg(&self.at).status();
    }
}

/// `mount` (or `umount`) as root: directly when the tests run as root, else through
/// `sudo -n` (a CI runner with password-less sudo).
fn as_root(program: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    if root {
        Command::new(program)
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", program]);
        sudo
    }
}

fn mount(args: &[&str], at: &Path) {
    let status = as_root("mount").args(args).arg(at).status().unwrap();
    assert!(
        status.success(),
        "mount {args:?} failed: this test needs root or password-less sudo \
         (set TEST_REAL_FULL_DISK=0 to leave it out)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_really_full_disk_never_acknowledges_what_it_did_not_store() {
    let disk = SmallDisk::mount("3m");
    let path = disk.at.join("notifier.db");
    let url = format!("sqlite://{}", path.display());
    let app = spawn_app_with(Backend::Sqlite, |raw| {
        raw.set("DATABASE_URL", &url);
    })
    .await;
    mail_accepts(&app.mail).await;

    // About 6 KiB each: 800 of them need twice the disk.
    let n = 800;
    let answers = deliver_all(&app, 0..n).await;
    let (acked, refused) = acked_or_refused(&answers);
    let refused: Vec<usize> = refused.iter().map(|id| padded_number(id)).collect();
    assert!(
        !refused.is_empty(),
        "the disk never filled; the test proves nothing"
    );
    eprintln!(
        "full disk: {} acknowledged, {} refused with 503",
        acked.len(),
        refused.len()
    );
    let stored = stored_ids(&path).await;
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");

    // Space comes back: Gigs' retries of the refused deliveries are stored.
    disk.grow("64m");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut left = refused;
    while !left.is_empty() {
        assert!(
            Instant::now() < deadline,
            "{} refused deliveries still refused after space came back",
            left.len()
        );
        let mut again = Vec::new();
        for i in left {
            let (status, body) = app.deliver(&padded_event(i).1).await;
            assert!(
                status == 503 || (200..300).contains(&status),
                "{status}: {body}"
            );
            if status == 503 {
                again.push(i);
            }
        }
        left = again;
        if !left.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let stored = stored_ids(&path).await;
    let all: HashSet<String> = (0..n).map(|i| padded_event(i).0).collect();
    let missing: Vec<_> = all.difference(&stored).collect();
    assert!(missing.is_empty(), "never stored: {missing:?}");
    // A full disk is an outage, not a refusal of anything's data: no work was set aside.
    app.wait_idle().await;
    let dead = app.store.dead_letters().await.unwrap();
    assert!(dead.is_empty(), "dead-lettered by a full disk: {dead:?}");
    eprintln!("space back: all {n} stored");
}
