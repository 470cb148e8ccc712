//! When to try again and when to give up: exponential backoff, a server's `Retry-After`,
//! the age limit, and a panicking attempt counted as a failed one.
//!
//! Every number that reaches the schedule may come from outside (a `Retry-After` of
//! `u64::MAX` seconds, a date years ahead, an odd setting), so the schedule is computed with
//! saturating arithmetic: an outside number can make a wait long, never wrap it into "due
//! now", and never make a wait longer than the backoff cap.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, SystemTime};

use futures::FutureExt;

use crate::outbound::CallError;
use crate::store::{now_ms, ClaimedEvent, ClaimedNotice, Completion, Queue};

/// When to try again, and when to give up.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
    pub max_age: Duration,
}

/// One claimed item, as the retry rules see it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub queue: Queue,
    pub id: String,
    /// Attempts so far, this one included.
    pub attempts: i64,
    /// When the current run of failures began (ms since the epoch).
    pub since: i64,
}

impl From<&ClaimedEvent> for Attempt {
    fn from(ev: &ClaimedEvent) -> Self {
        Self {
            queue: Queue::Events,
            id: ev.id.clone(),
            attempts: ev.attempts,
            since: ev.attempts_since,
        }
    }
}

impl From<&ClaimedNotice> for Attempt {
    fn from(n: &ClaimedNotice) -> Self {
        Self {
            queue: Queue::Notices,
            id: n.id.clone(),
            attempts: n.attempts,
            since: n.attempts_since,
        }
    }
}

/// A duration in whole milliseconds, saturating at `i64::MAX` (stored times are i64 ms).
pub fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl RetryPolicy {
    /// Exponential backoff from `base`, doubling per attempt up to `cap`, with jitter
    /// (uniform in the upper half, so retries of a burst spread out but never come early).
    /// A server's `Retry-After` is honoured when it asks for longer, but only up to `cap`:
    /// whatever it says, the wait stays within `[base, cap]`.
    pub fn delay(&self, attempts: i64, retry_after: Option<Duration>) -> Duration {
        let exp = attempts.clamp(1, 40) as u32 - 1;
        let raw = self
            .base
            .checked_mul(2u32.saturating_pow(exp.min(30)))
            .unwrap_or(self.cap)
            .min(self.cap);
        // `mul_f64` panics when the product does not fit; a huge cap must not do that.
        let jittered =
            Duration::try_from_secs_f64(raw.as_secs_f64() * rand::random_range(0.5..=1.0))
                .unwrap_or(raw)
                .min(raw);
        match retry_after {
            // `max`/`min` rather than `clamp`, which panics if a setting puts base above cap.
            Some(asked) => asked.max(self.base).min(self.cap).max(jittered),
            None => jittered,
        }
    }

    /// What to record after a failed attempt at `now` (ms): a dead letter when the error is
    /// permanent or the work has been failing for `max_age` or longer, else a retry.
    pub fn after_failure(&self, item: &Attempt, error: &CallError, now: i64) -> Completion {
        let retry_after = match error {
            CallError::Permanent { reason } => return dead(item, reason.clone()),
            CallError::Retryable { retry_after, .. } => *retry_after,
        };
        // Age counts how long the work has been failing, not when its next try would be,
        // so a server asking for a long wait delays the work instead of dead-lettering it.
        if now.saturating_sub(item.since) >= millis(self.max_age) {
            let reason = format!("gave up after {} attempts: {error}", item.attempts);
            return dead(item, reason);
        }
        let delay = self.delay(item.attempts, retry_after);
        Completion::Retry {
            queue: item.queue,
            id: item.id.clone(),
            next_attempt_at: now.saturating_add(millis(delay)),
            error: error.to_string(),
        }
    }
}

fn dead(item: &Attempt, error: String) -> Completion {
    Completion::Dead {
        queue: item.queue,
        id: item.id.clone(),
        error,
    }
}

/// Run the processing of one claimed item. If it panics, the completion that counts the
/// panic as a failed attempt (retry with backoff, or a dead letter by age), so the item is
/// neither lost nor reclaimed every lease forever without a trace.
///
/// The panic's message is not logged: it may quote personal data. The default panic hook
/// still reports where it happened.
pub async fn guarded(
    work: impl Future<Output = ()>,
    item: &Attempt,
    policy: &RetryPolicy,
) -> Option<Completion> {
    if AssertUnwindSafe(work).catch_unwind().await.is_ok() {
        return None;
    }
    match item.queue {
        Queue::Events => tracing::error!(
            event_id = %item.id,
            attempt = item.attempts,
            "processing panicked; counted as a failed attempt"
        ),
        Queue::Notices => tracing::error!(
            notice_id = %item.id,
            attempt = item.attempts,
            "processing panicked; counted as a failed attempt"
        ),
    }
    let error = CallError::Retryable {
        reason: "processing panicked".to_string(),
        retry_after: None,
    };
    Some(policy.after_failure(item, &error, now_ms()))
}

/// A server's `Retry-After` header as a wait, if it sent one.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?;
    Some(parse_retry_after(
        value.to_str().unwrap_or_default(),
        SystemTime::now(),
    ))
}

/// `Retry-After` as seconds or an HTTP date, as a wait from `now`. A date in the past, or a
/// value that is neither, is still a request to wait: the shortest the policy allows.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Duration {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Duration::from_secs(secs);
    }
    httpdate::parse_http_date(value)
        .ok()
        .and_then(|when| when.duration_since(now).ok())
        .unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(600),
            max_age: Duration::from_secs(3 * 86_400),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let p = policy();
        for _ in 0..50 {
            let d1 = p.delay(1, None);
            assert!(
                d1 >= Duration::from_millis(500) && d1 <= Duration::from_secs(1),
                "{d1:?}"
            );
            let d4 = p.delay(4, None);
            assert!(
                d4 >= Duration::from_secs(4) && d4 <= Duration::from_secs(8),
                "{d4:?}"
            );
            let d30 = p.delay(30, None);
            assert!(
                d30 >= Duration::from_secs(300) && d30 <= Duration::from_secs(600),
                "{d30:?}"
            );
        }
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(42))),
            Duration::from_secs(42)
        );
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        // Unreadable: a wait was asked for, of no known length.
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    #[test]
    fn any_retry_after_gives_a_delay_between_base_and_cap() {
        let p = policy();
        let now = SystemTime::now();
        let date = |t: SystemTime| httpdate::fmt_http_date(t);
        let cases = [
            (u64::MAX.to_string(), p.cap),
            ("100000000000000000".to_string(), p.cap),
            ("999999".to_string(), p.cap),
            (date(now + Duration::from_secs(10 * 86_400)), p.cap),
            (date(now - Duration::from_secs(3_600)), p.base),
            ("soon, maybe".to_string(), p.base),
            ("-5".to_string(), p.base),
            ("".to_string(), p.base),
            ("0".to_string(), p.base),
            ("7".to_string(), Duration::from_secs(7)),
            ("42".to_string(), Duration::from_secs(42)),
        ];
        for (value, expected) in cases {
            let asked = parse_retry_after(&value, now);
            for attempts in [1, 2, 5, 40, i64::MAX] {
                let d = p.delay(attempts, Some(asked));
                assert!(d >= p.base && d <= p.cap, "{value:?} #{attempts}: {d:?}");
                if attempts == 1 {
                    assert_eq!(d, expected, "{value:?}");
                }
                // The schedule's own arithmetic stays in range too.
                let at = i64::MAX.saturating_sub(1).saturating_add(millis(d));
                assert!(at > 0);
            }
        }
        assert_eq!(millis(Duration::from_secs(u64::MAX)), i64::MAX);
        assert_eq!(millis(Duration::MAX), i64::MAX);
    }

    #[test]
    fn a_setting_out_of_order_or_huge_does_not_panic() {
        let upside_down = RetryPolicy {
            base: Duration::from_secs(60),
            cap: Duration::from_secs(1),
            max_age: Duration::MAX,
        };
        assert_eq!(
            upside_down.delay(1, Some(Duration::MAX)),
            Duration::from_secs(1)
        );
        let huge = RetryPolicy {
            base: Duration::from_secs(u64::MAX),
            cap: Duration::MAX,
            max_age: Duration::MAX,
        };
        assert!(huge.delay(40, None) <= Duration::MAX);
        assert!(huge.delay(1, Some(Duration::ZERO)) >= Duration::from_secs(u64::MAX));
    }

    fn item(since: i64) -> Attempt {
        Attempt {
            queue: Queue::Events,
            id: "evt_1".to_string(),
            attempts: 3,
            since,
        }
    }

    fn unavailable(retry_after: Option<Duration>) -> CallError {
        CallError::Retryable {
            reason: "Core API GET subscription answered 503".to_string(),
            retry_after,
        }
    }

    #[test]
    fn a_long_retry_after_waits_the_cap_instead_of_dead_lettering() {
        let p = policy();
        let now = 1_700_000_000_000;
        // Failing for a minute; the server asks for u64::MAX seconds.
        let error = unavailable(Some(Duration::from_secs(u64::MAX)));
        match p.after_failure(&item(now - 60_000), &error, now) {
            Completion::Retry {
                next_attempt_at,
                error,
                ..
            } => {
                assert_eq!(next_attempt_at, now + millis(p.cap));
                assert_eq!(error, "Core API GET subscription answered 503");
            }
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    #[test]
    fn dead_letters_by_how_long_the_work_has_been_failing() {
        let p = policy();
        let now = 1_700_000_000_000;
        let max_age = millis(p.max_age);
        // Just under the age limit: retried, even if the next try lands past it.
        let c = p.after_failure(&item(now - max_age + 1), &unavailable(None), now);
        assert!(matches!(c, Completion::Retry { .. }), "{c:?}");
        // At or past it: dead, with the last error.
        for since in [now - max_age, now - max_age - 1, i64::MIN] {
            match p.after_failure(&item(since), &unavailable(None), now) {
                Completion::Dead { queue, id, error } => {
                    assert_eq!((queue, id.as_str()), (Queue::Events, "evt_1"));
                    assert_eq!(
                        error,
                        "gave up after 3 attempts: Core API GET subscription answered 503"
                    );
                }
                other => panic!("expected a dead letter, got {other:?}"),
            }
        }
        // Permanent errors are dead at once, whatever the age.
        let c = p.after_failure(&item(now), &CallError::permanent("x answered 404"), now);
        assert!(matches!(c, Completion::Dead { ref error, .. } if error == "x answered 404"));
    }

    #[tokio::test]
    async fn a_panicking_attempt_is_a_failed_attempt() {
        let p = policy();
        let quiet = async {};
        assert!(guarded(quiet, &item(now_ms()), &p).await.is_none());

        let panicking = async {
            let values: Vec<u8> = Vec::new();
            let _ = values[std::hint::black_box(3)];
        };
        let before = now_ms();
        let fresh = Attempt {
            queue: Queue::Notices,
            ..item(before)
        };
        match guarded(panicking, &fresh, &p).await {
            Some(Completion::Retry {
                queue,
                id,
                next_attempt_at,
                error,
            }) => {
                assert_eq!((queue, id.as_str()), (Queue::Notices, "evt_1"));
                assert_eq!(error, "processing panicked");
                // Backoff for the third attempt: 2 to 4 s from now.
                assert!(next_attempt_at >= before + 2_000, "{next_attempt_at}");
                assert!(next_attempt_at <= now_ms() + 4_000, "{next_attempt_at}");
            }
            other => panic!("expected a retry, got {other:?}"),
        }

        let old = item(before - millis(p.max_age) - 1);
        match guarded(async { panic!("boom") }, &old, &p).await {
            Some(Completion::Dead { error, .. }) => {
                assert_eq!(error, "gave up after 3 attempts: processing panicked")
            }
            other => panic!("expected a dead letter, got {other:?}"),
        }
    }
}
