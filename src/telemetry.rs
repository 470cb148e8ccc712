//! Logs and metrics. Logs carry ids and outcomes, never personal data or secrets.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Install the global tracing subscriber (`RUST_LOG` filter, default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = match format {
        LogFormat::Json => json_subscriber(filter, JsonSpanFields, std::io::stderr).try_init(),
        LogFormat::Pretty => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .pretty()
            .finish()
            .try_init(),
    };
}

/// The JSON log: one object a line, the event's fields at the top level, the spans it was
/// logged in as a list; span fields formatted by `fields` ([`JsonSpanFields`] in `serve`).
/// Tests of what is logged use it too, with a writer of their own.
pub(crate) fn json_subscriber<N, W>(
    filter: EnvFilter,
    fields: N,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true)
        .fmt_fields(fields)
        .finish()
}

/// Span fields as a JSON object written straight into the span's buffer. tracing-subscriber's
/// `JsonFields` builds a map of `serde_json::Value`s for every span it formats, which for
/// the span each request opens ([`crate::request_context`]) was most of that span's cost;
/// the object is the same (read back by the JSON format when a line is logged in the span).
pub struct JsonSpanFields;

impl<'w> FormatFields<'w> for JsonSpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut object = JsonObject::default();
        fields.record(&mut object);
        writer.write_str(&object.finish())
    }

    /// Fields recorded later: merged into the object (a rare path; not taken per request).
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> std::fmt::Result {
        let mut added = JsonObject::default();
        fields.record(&mut added);
        let added = added.finish();
        if current.fields.is_empty() {
            current.fields = added;
            return Ok(());
        }
        let parse = |text: &str| {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
                .map_err(|_| std::fmt::Error)
        };
        let mut merged = parse(&current.fields)?;
        merged.extend(parse(&added)?);
        current.fields = serde_json::to_string(&merged).map_err(|_| std::fmt::Error)?;
        Ok(())
    }
}

/// A JSON object written field by field, as `JsonFields` would write each field's value.
#[derive(Default)]
struct JsonObject {
    out: Vec<u8>,
    failed: bool,
}

impl JsonObject {
    /// `"name":value`, after a `{` or a `,`.
    fn field<T: serde::Serialize + ?Sized>(&mut self, field: &Field, value: &T) {
        self.out.push(if self.out.is_empty() { b'{' } else { b',' });
        self.write(field.name());
        self.out.push(b':');
        self.write(value);
    }

    fn write<T: serde::Serialize + ?Sized>(&mut self, value: &T) {
        self.failed |= serde_json::to_writer(&mut self.out, value).is_err();
    }

    /// The object; `{}` should writing ever fail (it cannot for these values): a span
    /// without its fields would make every line logged in it panic in the JSON format.
    fn finish(mut self) -> String {
        if self.out.is_empty() {
            self.out.push(b'{');
        }
        self.out.push(b'}');
        match self.failed {
            false => String::from_utf8(self.out).unwrap_or_else(|_| "{}".into()),
            true => "{}".into(),
        }
    }
}

impl Visit for JsonObject {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.field(field, &format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, &value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, &value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.field(field, &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, &value);
    }

    /// As `JsonFields` writes bytes: an array of numbers.
    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.field(field, value);
    }
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

/// A JSON log as `serve` writes it, kept in memory: for tests of what is logged.
#[cfg(test)]
pub(crate) mod captured {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    pub(crate) struct CapturedLog(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for CapturedLog {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl CapturedLog {
        /// Every line so far, each parsed as JSON.
        pub(crate) fn lines(&self) -> Vec<serde_json::Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }

        /// A subscriber that writes here as `serve`'s JSON log does ([`super::json_subscriber`]),
        /// at `info`, with span fields formatted by `fields`.
        pub(crate) fn subscriber<F>(&self, fields: F) -> impl tracing::Subscriber + Send + Sync
        where
            F: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
        {
            let log = self.clone();
            super::json_subscriber(super::EnvFilter::new("info"), fields, move || log.clone())
        }
    }
}

#[cfg(test)]
mod span_fields_tests {
    use tracing_subscriber::fmt::format::JsonFields;

    use super::captured::CapturedLog;
    use super::JsonSpanFields;

    /// The JSON line logged inside a span with many kinds of field (one recorded later),
    /// with the span fields formatted by `F`.
    fn line_with<F>(fields: F) -> serde_json::Value
    where
        F: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
    {
        let log = CapturedLog::default();
        let subscriber = log.subscriber(fields);
        tracing::subscriber::with_default(subscriber, || {
            let odd = "quote \" back\\slash\nnew line \u{1} é";
            let span = tracing::info_span!(
                "request",
                method = %"POST",
                path = odd,
                r#type = "raw identifier",
                n = -3i64,
                u = 7u64,
                f = 1.5f64,
                nan = f64::NAN,
                bytes = &b"ab\x00"[..],
                yes = true,
                dbg = ?vec![1, 2],
                later = tracing::field::Empty,
            );
            span.record("later", "recorded");
            span.record("u", 8u64);
            span.in_scope(|| tracing::info!("inside"));
        });
        let mut lines = log.lines();
        assert_eq!(lines.len(), 1);
        lines.remove(0)
    }

    #[test]
    fn span_fields_read_back_as_json_fields_would_write_them() {
        let ours = line_with(JsonSpanFields);
        let theirs = line_with(JsonFields::new());
        assert_eq!(ours["spans"], theirs["spans"]);
        let span = &ours["spans"][0];
        assert_eq!(span["path"], "quote \" back\\slash\nnew line \u{1} é");
        assert_eq!(span["type"], "raw identifier");
        assert_eq!(
            (span["n"].as_i64(), span["u"].as_u64()),
            (Some(-3), Some(8))
        );
        assert_eq!(span["later"], "recorded");
        assert_eq!(span["dbg"], "[1, 2]");
        assert_eq!(span["nan"], serde_json::Value::Null);
        assert_eq!(span["bytes"], serde_json::json!([97, 98, 0]));
    }
}
