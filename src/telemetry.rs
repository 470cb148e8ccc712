//! Logs and metrics. Logs carry ids and outcomes, never personal data or secrets.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Install the global tracing subscriber (`RUST_LOG` filter, default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init(),
        LogFormat::Pretty => builder.pretty().try_init(),
    };
}

/// A value the client chose (a request id, an event type we do not handle), fit for a log
/// line: kept when it is short and made only of letters, digits and `._-/`, otherwise
/// replaced by a hash of it, so a log line never carries whatever a caller put there.
pub fn loggable(value: &str, max_len: usize) -> std::borrow::Cow<'_, str> {
    let plain = !value.is_empty()
        && value.len() <= max_len
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'));
    if plain {
        std::borrow::Cow::Borrowed(value)
    } else {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(value.as_bytes());
        std::borrow::Cow::Owned(format!("sha256:{}", &hex::encode(digest)[..16]))
    }
}

/// Install a panic hook that logs where a panic happened but not its message: a message
/// can quote whatever value a bug was holding (an address, a payload).
pub fn init_panic_logging() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(at, "panic (message withheld: it may quote personal data)");
    }));
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0, 300.0, 3600.0,
                ])
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (several apps in one test
            // process); this one still renders what it records.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Status class of an outside call: `2xx`, `4xx`, `5xx`, `timeout` or `transport_error`.
pub fn status_class(result: &Result<reqwest::Response, reqwest::Error>) -> &'static str {
    match result {
        Ok(r) => match r.status().as_u16() / 100 {
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
        Err(e) if e.is_timeout() => "timeout",
        Err(_) => "transport_error",
    }
}

/// Count and time one call to an outside API (`gigs` or `mail`).
pub fn record_call(api: &'static str, class: &'static str, elapsed: Duration) {
    metrics::counter!("gigs_notifier_outbound_requests_total", "api" => api, "status_class" => class)
        .increment(1);
    metrics::histogram!("gigs_notifier_outbound_request_duration_seconds", "api" => api)
        .record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod loggable_tests {
    use super::loggable;

    #[test]
    fn plain_values_are_kept_and_others_hashed() {
        assert_eq!(loggable("0b6f-41a2_x.y", 64), "0b6f-41a2_x.y");
        for odd in [
            "jerry@example.com",
            "a b",
            "\n{\"x\":1}",
            "",
            &"a".repeat(65),
        ] {
            let shown = loggable(odd, 64);
            assert!(shown.starts_with("sha256:"), "{odd:?} -> {shown}");
            assert_eq!(shown.len(), "sha256:".len() + 16);
        }
        assert_eq!(
            loggable("jerry@example.com", 64),
            loggable("jerry@example.com", 64)
        );
    }
}
