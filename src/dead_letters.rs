//! Dead-letter inspection shared by the CLI and `/admin`.

use serde::Serialize;

use crate::store::{DeadLetter, Store, StoreError};

/// A dead letter with its event, personal values masked.
#[derive(Debug, Serialize)]
pub struct Detail {
    #[serde(flatten)]
    pub letter: DeadLetter,
    /// The stored event, masked; `None` if it was purged.
    pub event: Option<serde_json::Value>,
}

/// Look up one dead letter by event or notice id.
pub async fn detail(store: &Store, id: &str) -> Result<Option<Detail>, StoreError> {
    let Some(letter) = store.dead_letter(id).await? else {
        return Ok(None);
    };
    let event = store
        .event_payload(&letter.event_id)
        .await?
        .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
        .map(|v| crate::mask::mask(&v));
    Ok(Some(Detail { letter, event }))
}

/// Requeue every dead letter; `each` is told the position of each one (it may have been
/// retried or purged meanwhile, and then is not counted). Returns (requeued, total).
pub async fn retry_all(
    store: &Store,
    mut each: impl FnMut(usize, usize, &DeadLetter),
) -> Result<(usize, usize), StoreError> {
    let items = store.dead_letters().await?;
    let mut requeued = 0;
    for (i, d) in items.iter().enumerate() {
        requeued += store
            .retry_dead_letter(&d.id, crate::store::now_ms())
            .await? as usize;
        each(i, items.len(), d);
    }
    Ok((requeued, items.len()))
}

/// What `gigs-notifier dead-letters …` was asked to do.
pub enum Action {
    List,
    Show(String),
    Retry(String),
    RetryAll,
    Purge(String),
}

fn when(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".to_string())
}

/// Run a dead-letter command, printing for an operator.
pub async fn cli(store: &Store, action: Action) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match action {
        Action::List => {
            let items = store.dead_letters().await?;
            if items.is_empty() {
                println!("no dead letters");
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<8} {:<38} {:<36} {:>8} {:<24} reason",
                "queue", "id", "kind", "attempts", "dead since"
            );
            for d in &items {
                println!(
                    "{:<8} {:<38} {:<36} {:>8} {:<24} {}",
                    d.queue,
                    d.id,
                    d.kind,
                    d.attempts,
                    when(d.finished_at),
                    d.last_error.as_deref().unwrap_or("-")
                );
            }
            println!("{} dead letter(s)", items.len());
            Ok(ExitCode::SUCCESS)
        }
        Action::Show(id) => match detail(store, &id).await? {
            Some(d) => {
                println!("{}", serde_json::to_string_pretty(&d)?);
                Ok(ExitCode::SUCCESS)
            }
            None => {
                eprintln!("no dead letter has id {id}");
                Ok(ExitCode::FAILURE)
            }
        },
        Action::Retry(id) => {
            if store.retry_dead_letter(&id, crate::store::now_ms()).await? {
                println!("requeued {id}; a running service will pick it up");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("no dead letter has id {id}");
                Ok(ExitCode::FAILURE)
            }
        }
        Action::Purge(id) => {
            if store.purge_dead_letter(&id).await? {
                println!("deleted dead letter {id}");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("no dead letter has id {id}");
                Ok(ExitCode::FAILURE)
            }
        }
        Action::RetryAll => {
            let (done, total) = retry_all(store, |i, total, d| {
                println!("[{}/{total}] requeued {} {}", i + 1, d.queue, d.id)
            })
            .await?;
            println!("requeued {done} of {total} dead letter(s)");
            Ok(ExitCode::SUCCESS)
        }
    }
}
