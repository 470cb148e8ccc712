//! Where the worker runs: a Tokio runtime of its own, on one thread that runs at a lower CPU
//! priority (nice +10) than the threads that answer deliveries.
//!
//! Acknowledging is what Gigs times and what a burst needs; processing can wait a few
//! milliseconds. On one shared runtime the two take turns task by task, so a busy worker
//! (Core API look-ups, rendering, mail calls) adds its run time to every acknowledgement.
//! With its own lower-priority threads the kernel gives the ingress the CPU first whenever
//! both want it, and the worker every cycle the ingress leaves; when nothing arrives, the
//! worker runs at full speed. Store writes still go through the one group-commit queue.
//!
//! One thread, not a pool: its work is mostly waiting on the Core API and the mail service,
//! and every thread of a runtime adds an allocator heap to the resident memory (a pool of
//! two raised the peak by over 10 MiB).

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::Worker;

/// How much lower the worker's threads run (Linux `nice`: +10 is about a tenth of the CPU
/// share of a normal thread when both are busy).
const NICENESS: i32 = 10;

/// Start `worker` on its own runtime; the returned handle resolves when it has stopped
/// (after `stop` is cancelled and it has handed back its claims).
pub fn spawn(worker: Worker, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    let (done, stopped) = oneshot::channel::<()>();
    let started = std::thread::Builder::new()
        .name("worker".into())
        .spawn(move || {
            lower_priority();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => runtime.block_on(worker.run(stop)),
                Err(e) => tracing::error!(error = %e, "could not start the worker's runtime"),
            }
            let _ = done.send(());
        });
    if let Err(e) = started {
        tracing::error!(error = %e, "could not start the worker's thread");
    }
    tokio::spawn(async move {
        let _ = stopped.await;
    })
}

/// Lower the calling thread's CPU priority; a system that refuses keeps it as it is.
fn lower_priority() {
    let me = rustix::thread::gettid();
    let current = rustix::process::getpriority_process(Some(me)).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(Some(me), current.max(NICENESS)) {
        tracing::debug!(error = %e, "could not lower the worker thread's priority");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_lowered_thread_runs_at_the_worker_niceness() {
        std::thread::spawn(|| {
            super::lower_priority();
            let me = rustix::thread::gettid();
            let nice = rustix::process::getpriority_process(Some(me)).expect("own priority");
            assert!(nice >= super::NICENESS, "niceness {nice}");
        })
        .join()
        .expect("thread");
    }
}
