//! Sample notices for `templates check` and `templates preview`: for every kind, one with
//! every optional value present and one with none, so both sides of each `{% if %}` in a
//! template are rendered before the template is trusted with a real notice.

use chrono::{DateTime, Utc};

use super::{InfoKind, Notice, NoticeKind};
use crate::domain::{LastFour, PlanName};
use crate::event::{ActorKind, SimKind};

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_710_084_466, 0).unwrap_or_default()
}

/// The samples of one kind: the full one first (what `preview` shows).
pub fn samples(kind: NoticeKind) -> Vec<Notice> {
    let full = full(kind);
    let mut bare = Notice::new(kind, at());
    bare.cancel_only = false;
    let mut out = vec![full.clone(), bare];
    if matches!(
        kind,
        NoticeKind::PortOutRequested
            | NoticeKind::PortOutCompleted
            | NoticeKind::PortOutNotCompleted
    ) {
        let mut moving = full;
        moving.cancel_only = !moving.cancel_only;
        out.push(moving);
    }
    // Every other actor, on the full sample.
    for actor in [
        ActorKind::Customer,
        ActorKind::OperatorSystems,
        ActorKind::Platform,
    ] {
        out.push(out[0].clone().by(Some(actor)));
    }
    out
}

/// The sample with every value this kind can carry.
fn full(kind: NoticeKind) -> Notice {
    let expires = DateTime::from_timestamp(1_710_689_266, 0).unwrap_or_default();
    let mut n = Notice::new(kind, at());
    match kind {
        NoticeKind::PortOutCredentialsIssued => n.expires_at = Some(expires),
        NoticeKind::AccountInformationChanged => {
            n = n.with_changed(vec![
                InfoKind::FullName,
                InfoKind::Birthday,
                InfoKind::OtherAccountDetails,
            ])
        }
        NoticeKind::EmailAddressReplaced => {
            n = n.with_changed(vec![InfoKind::EmailAddress, InfoKind::FullName])
        }
        NoticeKind::PlanChanged => n.plan = PlanName::new("Unlimited Plus"),
        NoticeKind::SimChanged | NoticeKind::SimChangeRequested => n.sim = Some(SimKind::ESim),
        NoticeKind::SimAndPlanChanged => {
            n.sim = Some(SimKind::PhysicalSim);
            n.plan = PlanName::new("Unlimited Plus");
        }
        NoticeKind::PortOutRequested
        | NoticeKind::PortOutCompleted
        | NoticeKind::PortOutNotCompleted => n.cancel_only = false,
        NoticeKind::SimChangeNotCompleted
        | NoticeKind::AddressAdded
        | NoticeKind::AddressRemoved
        | NoticeKind::Subscription(_) => {}
    }
    n.on_line(LastFour::of("0147")).by(Some(ActorKind::Support))
}

/// Every sample of every kind.
pub fn all() -> Vec<Notice> {
    NoticeKind::ALL.into_iter().flat_map(samples).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_full_and_a_bare_sample() {
        for kind in NoticeKind::ALL {
            let s = samples(kind);
            assert!(s.len() >= 2, "{kind:?}");
            assert!(s.iter().all(|n| n.kind() == kind));
            assert_ne!(s[0], s[1], "{kind:?}");
        }
        assert!(all().len() > NoticeKind::ALL.len() * 2);
    }
}
