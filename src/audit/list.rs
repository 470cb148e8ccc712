//! Listing the audit trail: the filter (`notices list` flags, `/admin/notices` query), the
//! records as operators see them, and their table, JSON and CSV forms.

use std::io::Write;

use serde::{Serialize, Serializer};

use crate::store::Store;

/// Which records to list. `Debug` is left out on purpose: `email` is personal data.
#[derive(Clone)]
pub struct Filter {
    pub user: Option<String>,
    pub email: Option<String>,
    pub subscription: Option<String>,
    pub kind: Option<String>,
    /// Created at or after this time (ms since the epoch).
    pub since: Option<i64>,
    pub limit: i64,
}

impl Default for Filter {
    fn default() -> Self {
        Self {
            user: None,
            email: None,
            subscription: None,
            kind: None,
            since: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// Records one listing returns unless asked for more (newest first), and the most it may.
pub const DEFAULT_LIMIT: i64 = 1000;
pub const MAX_LIMIT: i64 = 100_000;

/// `--since` / `since=`: RFC 3339 (`2026-05-01T08:00:00Z`) or a UTC date (`2026-05-01`).
pub fn parse_since(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| {
            "since must be an RFC 3339 time (2026-05-01T08:00:00Z) or a date (2026-05-01)"
                .to_string()
        })
}

/// The audit record of one notice, with its attempts.
#[derive(Debug, Clone, Serialize)]
pub struct NoticeRecord {
    pub notice_id: String,
    pub event_id: String,
    pub event_type: String,
    pub kind: String,
    pub user_id: Option<String>,
    pub subscription_id: Option<String>,
    #[serde(serialize_with = "time")]
    pub created_at: i64,
    /// `pending`, `sent` or `dead`.
    pub outcome: String,
    #[serde(serialize_with = "optional_time")]
    pub finished_at: Option<i64>,
    pub message_id: Option<String>,
    /// Attempts recorded (also counts those from before the trail kept each one).
    pub attempts: i64,
    /// Each recorded attempt, oldest first.
    pub history: Vec<AttemptEntry>,
}

/// One recorded attempt.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptEntry {
    pub attempt: i64,
    #[serde(serialize_with = "time")]
    pub at: i64,
    pub outcome: String,
    pub http_status: Option<i64>,
    pub reason: Option<String>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

fn time<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

fn optional_time<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => s.serialize_str(&rfc3339(*ms)),
        None => s.serialize_none(),
    }
}

/// How `notices list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

pub const CSV_HEADER: &str = "notice_id,event_id,event_type,kind,user_id,subscription_id,\
                              created_at,outcome,finished_at,message_id,attempts,last_http_status";

/// A CSV field: quoted when it holds a separator, a quote or a line break (RFC 4180).
fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// Write `records` in `format`.
pub fn write(
    records: &[NoticeRecord],
    format: Format,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, records)?;
            writeln!(out)
        }
        Format::Csv => {
            writeln!(out, "{CSV_HEADER}")?;
            for r in records {
                let last_status = r.history.iter().rev().find_map(|a| a.http_status);
                let fields = [
                    r.notice_id.clone(),
                    r.event_id.clone(),
                    r.event_type.clone(),
                    r.kind.clone(),
                    opt(&r.user_id),
                    opt(&r.subscription_id),
                    rfc3339(r.created_at),
                    r.outcome.clone(),
                    r.finished_at.map(rfc3339).unwrap_or_default(),
                    opt(&r.message_id),
                    r.attempts.to_string(),
                    last_status.map(|s| s.to_string()).unwrap_or_default(),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                writeln!(out, "{}", line.join(","))?;
            }
            Ok(())
        }
        Format::Table => {
            if records.is_empty() {
                return writeln!(out, "no notices match");
            }
            let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
            for r in records {
                writeln!(
                    out,
                    "{}  {}  {}  user {}  subscription {}",
                    rfc3339(r.created_at),
                    r.notice_id,
                    r.kind,
                    dash(&r.user_id),
                    dash(&r.subscription_id)
                )?;
                writeln!(
                    out,
                    "    event {} ({})  {} {}  message id {}",
                    r.event_id,
                    r.event_type,
                    r.outcome,
                    r.finished_at.map(rfc3339).unwrap_or_default(),
                    dash(&r.message_id)
                )?;
                for a in &r.history {
                    let line = format!(
                        "    #{:<3} {}  {:<9}  {:>3}  {}",
                        a.attempt,
                        rfc3339(a.at),
                        a.outcome,
                        a.http_status.map(|s| s.to_string()).unwrap_or_default(),
                        a.reason.as_deref().unwrap_or("")
                    );
                    writeln!(out, "{}", line.trim_end())?;
                }
            }
            writeln!(out, "{} notice(s)", records.len())
        }
    }
}

/// `gigs-notifier notices list`.
pub async fn cli(store: &Store, filter: &Filter, format: Format) -> anyhow::Result<()> {
    let records = store.notice_audit(filter).await?;
    write(&records, format, &mut std::io::stdout().lock())?;
    Ok(())
}

/// `GET /admin/notices?user=&email=&subscription=&kind=&since=&limit=`, as given.
#[derive(serde::Deserialize)]
pub struct NoticesQuery {
    pub user: Option<String>,
    pub email: Option<String>,
    pub subscription: Option<String>,
    pub kind: Option<String>,
    pub since: Option<String>,
    pub limit: Option<String>,
}

/// A filter from the `/admin/notices` query string, or why not.
pub fn filter_from_query(q: NoticesQuery) -> Result<Filter, (&'static str, String)> {
    let NoticesQuery {
        user,
        email,
        subscription,
        kind,
        since,
        limit,
    } = q;
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let since = nonempty(since)
        .map(|s| parse_since(&s))
        .transpose()
        .map_err(|m| ("invalid_since", m))?;
    let limit = match nonempty(limit) {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or(("invalid_limit", format!("limit must be 1 to {MAX_LIMIT}")))?,
    };
    Ok(Filter {
        user: nonempty(user),
        email: nonempty(email),
        subscription: nonempty(subscription),
        kind: nonempty(kind),
        since,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_rfc3339_or_a_date() {
        assert_eq!(parse_since("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_since("1970-01-01T00:00:01.5Z").unwrap(), 1_500);
        assert_eq!(parse_since("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("2026-13-01").is_err());
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        assert_eq!(csv_field("ntc_1"), "ntc_1");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
