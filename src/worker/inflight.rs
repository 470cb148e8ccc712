//! What the worker has in flight, and how much more it may claim: events and notices each
//! have their own share of the concurrency, and each recipient may hold only a few
//! in-flight mail calls, so a backlog of one kind or a recipient whose mail calls hang
//! cannot starve the rest.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::store::{Queue, Wanted};

/// The worker's concurrency, split.
#[derive(Debug, Clone, Copy)]
pub struct Shares {
    pub events: usize,
    pub notices: usize,
    /// In-flight notices one recipient may hold.
    pub per_recipient: usize,
}

impl Shares {
    /// Half of `concurrency` for events, the rest for notices (each at least one).
    pub fn split(concurrency: usize, per_recipient: usize) -> Self {
        let concurrency = concurrency.max(2);
        Self {
            events: concurrency / 2,
            notices: concurrency - concurrency / 2,
            per_recipient: per_recipient.max(1),
        }
    }
}

#[derive(Default)]
struct State {
    items: HashSet<(Queue, String)>,
    events: usize,
    notices: usize,
    /// In-flight notices per recipient address. Personal data: never logged.
    recipients: HashMap<String, usize>,
}

/// Shared between the claiming loop, the tasks and the lease renewer.
#[derive(Clone, Default)]
pub struct InFlight {
    state: Arc<Mutex<State>>,
}

/// Removes an item from [`InFlight`] when its task ends, however it ends (also aborted).
pub struct Guard {
    state: Arc<Mutex<State>>,
    key: (Queue, String),
    recipient: Option<String>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if !st.items.remove(&self.key) {
            return;
        }
        match self.key.0 {
            Queue::Events => st.events -= 1,
            Queue::Notices => st.notices -= 1,
        }
        if let Some(r) = &self.recipient {
            if let Some(n) = st.recipients.get_mut(r) {
                *n -= 1;
                if *n == 0 {
                    st.recipients.remove(r);
                }
            }
        }
    }
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What a claim may take now.
    pub fn wanted(&self, shares: &Shares) -> Wanted {
        let st = self.lock();
        Wanted {
            events: shares.events.saturating_sub(st.events) as i64,
            notices: shares.notices.saturating_sub(st.notices) as i64,
            busy_recipients: st
                .recipients
                .iter()
                .filter(|(_, n)| **n >= shares.per_recipient)
                .map(|(r, _)| r.clone())
                .collect(),
        }
    }

    /// Whether either share has room for a worthwhile claim (a quarter of it), or nothing
    /// is in flight at all. Claims are writes: not one per finished item.
    pub fn worth_claiming(&self, shares: &Shares) -> bool {
        let st = self.lock();
        let room = |max: usize, used: usize| max.saturating_sub(used) >= (max / 4).max(1);
        st.items.is_empty() || room(shares.events, st.events) || room(shares.notices, st.notices)
    }

    /// Take an event.
    pub fn event(&self, id: &str) -> Guard {
        let key = (Queue::Events, id.to_string());
        let mut st = self.lock();
        if st.items.insert(key.clone()) {
            st.events += 1;
        }
        Guard {
            state: self.state.clone(),
            key,
            recipient: None,
        }
    }

    /// Take a notice, unless its recipient already holds its share: then `None`, and the
    /// caller hands it back.
    pub fn notice(&self, id: &str, recipient: &str, shares: &Shares) -> Option<Guard> {
        let key = (Queue::Notices, id.to_string());
        let mut st = self.lock();
        let held = st.recipients.get(recipient).copied().unwrap_or(0);
        if held >= shares.per_recipient || st.items.contains(&key) {
            return None;
        }
        st.items.insert(key.clone());
        st.notices += 1;
        *st.recipients.entry(recipient.to_string()).or_default() += 1;
        Some(Guard {
            state: self.state.clone(),
            key,
            recipient: Some(recipient.to_string()),
        })
    }

    /// Ids in flight on `queue` (the leases the renewer extends).
    pub fn ids(&self, queue: Queue) -> Vec<String> {
        self.lock()
            .items
            .iter()
            .filter(|(q, _)| *q == queue)
            .map(|(_, id)| id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_the_concurrency() {
        let s = Shares::split(64, 2);
        assert_eq!((s.events, s.notices), (32, 32));
        let s = Shares::split(1, 0);
        assert_eq!((s.events, s.notices, s.per_recipient), (1, 1, 1));
    }

    #[test]
    fn a_recipient_holds_at_most_its_share_and_frees_it_when_done() {
        let shares = Shares::split(8, 2);
        let inflight = InFlight::default();
        let a = inflight
            .notice("ntc_1", "slow@example.com", &shares)
            .unwrap();
        let _b = inflight
            .notice("ntc_2", "slow@example.com", &shares)
            .unwrap();
        assert!(inflight
            .notice("ntc_3", "slow@example.com", &shares)
            .is_none());
        let other = inflight.notice("ntc_4", "other@example.com", &shares);
        assert!(other.is_some());
        let wanted = inflight.wanted(&shares);
        assert_eq!(wanted.busy_recipients, ["slow@example.com"]);
        assert_eq!(wanted.notices, 1);
        assert_eq!(wanted.events, 4);
        drop(a);
        assert!(inflight.wanted(&shares).busy_recipients.is_empty());
        assert!(inflight
            .notice("ntc_3", "slow@example.com", &shares)
            .is_some());
    }

    #[test]
    fn events_and_notices_do_not_take_each_others_share() {
        let shares = Shares::split(4, 4);
        let inflight = InFlight::default();
        let _n: Vec<_> = (0..2)
            .map(|i| inflight.notice(&format!("ntc_{i}"), &format!("u{i}@x.org"), &shares))
            .collect();
        let wanted = inflight.wanted(&shares);
        assert_eq!((wanted.events, wanted.notices), (2, 0));
        let _e = inflight.event("evt_1");
        assert_eq!(inflight.ids(Queue::Events), ["evt_1"]);
        assert!(inflight.worth_claiming(&shares));
    }
}
