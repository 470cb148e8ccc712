//! Notices: every kind has its words, and only allow-listed values reach them.

use super::*;
use crate::event::HandledType;

fn at() -> DateTime<Utc> {
    "2024-03-10T15:27:46Z".parse().unwrap()
}

/// One notice of every kind (and both port-out behaviours).
fn all_notices() -> Vec<Notice> {
    let line = LastFour::of("+19591234567");
    let mut v = vec![
        Notice::port_out_credentials_issued(at(), Some(at())),
        Notice::account_information_changed(at(), vec![InfoKind::FullName, InfoKind::EmailAddress]),
        Notice::email_address_replaced(at(), vec![InfoKind::EmailAddress]),
        Notice::subscription_changed(at(), None, Some(PlanName::new("Gigs Global"))).unwrap(),
        Notice::subscription_changed(at(), Some(SimKind::ESim), None).unwrap(),
        Notice::subscription_changed(at(), Some(SimKind::PhysicalSim), Some(None)).unwrap(),
        Notice::sim_change_requested(at(), SimKind::ESim),
        Notice::sim_change_not_completed(at()),
        Notice::address(NoticeKind::AddressAdded, at()),
        Notice::address(NoticeKind::AddressRemoved, at()),
    ];
    for kind in [
        NoticeKind::PortOutRequested,
        NoticeKind::PortOutCompleted,
        NoticeKind::PortOutNotCompleted,
    ] {
        v.push(Notice::port_out(kind, at(), false));
        v.push(Notice::port_out(kind, at(), true));
    }
    for t in HandledType::ALL {
        if let HandledType::Subscription(step) = t {
            v.push(Notice::subscription(step, at()));
        }
    }
    v.into_iter().map(|n| n.on_line(line.clone())).collect()
}

#[test]
fn every_kind_has_a_notice_and_its_own_subject() {
    let notices = all_notices();
    for kind in NoticeKind::ALL {
        assert!(notices.iter().any(|n| n.kind() == kind), "{kind:?}");
        assert_eq!(NoticeKind::from_code(kind.code()), Some(kind));
    }
    let mut subjects: Vec<_> = notices.iter().map(|n| n.subject()).collect();
    let total = subjects.len();
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), total);
}

#[test]
fn content_says_what_and_when() {
    let n = Notice::account_information_changed(
        at(),
        vec![
            InfoKind::FullName,
            InfoKind::EmailAddress,
            InfoKind::FullName,
        ],
    );
    assert_eq!(
        n.content(),
        "The following information on your account was changed on 2024-03-10 15:27 UTC: \
         email address and name. If you do not recognise this, contact support right away."
    );
    for n in all_notices() {
        assert!(
            n.content().contains("2024-03-10 15:27 UTC"),
            "{}",
            n.content()
        );
    }
}

#[test]
fn a_sim_change_never_speaks_of_a_plan_and_neither_change_is_no_notice() {
    for sim in [SimKind::ESim, SimKind::PhysicalSim, SimKind::Unknown] {
        let n = Notice::subscription_changed(at(), Some(sim), None).unwrap();
        let text = format!("{} {}", n.subject(), n.content()).to_lowercase();
        assert!(!text.contains("plan"), "{text}");
        assert!(text.contains("sim"), "{text}");
    }
    assert!(Notice::subscription_changed(at(), None, None).is_none());
    let both = Notice::subscription_changed(at(), Some(SimKind::ESim), Some(PlanName::new("X 5G")));
    let both = both.unwrap();
    assert_eq!(both.kind(), NoticeKind::SimAndPlanChanged);
    assert!(both.content().contains("\"X 5G\"") && both.content().contains("eSIM"));
}

#[test]
fn the_line_is_named_by_its_last_four_digits_and_the_actor_by_kind() {
    let n = Notice::sim_change_requested(at(), SimKind::ESim)
        .on_line(LastFour::of("+19591234567"))
        .by(Some(ActorKind::Support));
    let text = n.content();
    assert!(text.contains("ending in 4567"), "{text}");
    assert!(!text.contains("959123"), "{text}");
    assert!(text.contains("customer support"), "{text}");
}

#[test]
fn cancel_only_port_outs_say_the_number_does_not_move() {
    let n = Notice::port_out(NoticeKind::PortOutRequested, at(), true);
    assert!(
        n.content().contains("without moving the number"),
        "{}",
        n.content()
    );
    let n = Notice::port_out(NoticeKind::PortOutRequested, at(), false);
    assert!(
        n.content().contains("to another provider"),
        "{}",
        n.content()
    );
}

#[test]
fn port_out_credentials_say_when_they_expire() {
    let expires = "2024-03-17T15:27:46Z".parse().unwrap();
    let n = Notice::port_out_credentials_issued(at(), Some(expires));
    assert!(
        n.content().contains("expire on 2024-03-17 15:27 UTC"),
        "{}",
        n.content()
    );
}

#[test]
fn plan_name_is_the_only_free_text() {
    let n = Notice::subscription_changed(at(), None, Some(PlanName::new("Unlimited 5G"))).unwrap();
    assert!(n.content().contains("\"Unlimited 5G\""));
}

#[test]
fn rules_name_the_notices_they_require() {
    for kind in [
        NoticeKind::SimChangeRequested,
        NoticeKind::PortOutRequested,
        NoticeKind::AddressAdded,
        NoticeKind::EmailAddressReplaced,
    ] {
        assert!(kind.required_by().is_some(), "{kind:?}");
    }
    assert!(NoticeKind::Subscription(Lifecycle::Renewed)
        .required_by()
        .is_none());
}

#[test]
fn notice_ids_are_stable_and_distinct() {
    let a = notice_id("evt_1", "account_information_changed", "account");
    assert_eq!(
        a,
        notice_id("evt_1", "account_information_changed", "account")
    );
    assert_ne!(
        a,
        notice_id("evt_1", "email_address_replaced", "previous_address")
    );
    assert_ne!(
        a,
        notice_id("evt_2", "account_information_changed", "account")
    );
    assert!(a.starts_with("ntc_") && a.len() == 36);
}
