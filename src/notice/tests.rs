//! Notices: every kind has its words, and only allow-listed values reach them.

use super::check;
use super::context::{Brand, BrandValues};
use super::locale::LocaleTag;
use super::templates::{self, TemplateSet};
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

/// The bundled set, checked with the sample brand variants.
fn bundled() -> TemplateSet {
    let brands = [sample_brand()];
    let (set, report) = check::load(
        templates::bundled_files(),
        &tag("en"),
        &brands,
        chrono_tz::UTC,
    );
    assert!(report.problems.is_empty(), "{report}");
    set.unwrap()
}

fn tag(s: &str) -> LocaleTag {
    LocaleTag::parse(s).unwrap()
}

fn sample_brand() -> Brand {
    Brand {
        name: "Example Mobile".into(),
        support_url: Some("https://help.example.com".into()),
        support_email: Some("support@example.com".into()),
        support_phone: Some("+1 800 555 0100".into()),
    }
}

fn settings(zone: chrono_tz::Tz) -> NoticeSettings {
    NoticeSettings {
        templates: std::sync::Arc::new(bundled()),
        brand: BrandValues {
            support_url: Some("https://help.example.com".into()),
            ..BrandValues::default()
        },
        zone,
    }
}

/// `n` rendered in `locale` (UTC), subject and content.
fn render(n: &Notice, locale: &str) -> Rendered {
    let s = settings(chrono_tz::UTC);
    s.render_in(n, &tag(locale), &sample_brand()).unwrap()
}

fn text(n: &Notice, locale: &str) -> String {
    let r = render(n, locale);
    format!("{}\n{}", r.subject, r.content)
}

#[test]
fn every_kind_has_a_notice_and_its_own_subject_in_every_bundled_locale() {
    let notices = all_notices();
    for kind in NoticeKind::ALL {
        assert!(notices.iter().any(|n| n.kind() == kind), "{kind:?}");
        assert_eq!(NoticeKind::from_code(kind.code()), Some(kind));
    }
    for locale in ["en", "es", "de"] {
        let mut subjects: Vec<_> = notices.iter().map(|n| render(n, locale).subject).collect();
        let total = subjects.len();
        subjects.sort();
        subjects.dedup();
        assert_eq!(subjects.len(), total, "{locale}: {subjects:?}");
    }
}

#[test]
fn a_template_with_a_control_character_is_refused_with_its_line() {
    let mut files = templates::bundled_files();
    let file = files
        .iter_mut()
        .find(|f| f.path == "en/subscription_created.txt")
        .expect("the bundled English text of subscription_created");
    file.text = format!("Hello\n\tthere\r\nline three \u{0}\n{}", file.text);
    let (set, report) = check::load(files, &tag("en"), &[sample_brand()], chrono_tz::UTC);
    assert!(set.is_none());
    let shown = report.to_string();
    assert!(
        shown.contains("en/subscription_created.txt:3:") && shown.contains("U+0000"),
        "{shown}"
    );
}

#[test]
fn the_bundled_set_is_complete_in_english_spanish_and_german() {
    let brands = [sample_brand()];
    let (set, report) = check::load(
        templates::bundled_files(),
        &tag("en"),
        &brands,
        chrono_tz::UTC,
    );
    assert!(
        report.problems.is_empty() && report.warnings.is_empty(),
        "{report:?}"
    );
    let set = set.unwrap();
    let locales: Vec<&str> = set.locales().map(LocaleTag::as_str).collect();
    assert_eq!(locales, ["de", "en", "es"]);
}

#[test]
fn times_are_written_the_locale_way_in_the_display_zone() {
    let n = Notice::subscription(Lifecycle::Created, at());
    let cases = [
        ("en", chrono_tz::UTC, "March 10, 2024 at 3:27 PM UTC"),
        (
            "en",
            chrono_tz::America::New_York,
            "March 10, 2024 at 11:27 AM EDT",
        ),
        (
            "es",
            chrono_tz::America::Mexico_City,
            "10 de marzo de 2024 a las 09:27 (CST)",
        ),
        (
            "de",
            chrono_tz::Europe::Berlin,
            "10. März 2024 um 16:27 Uhr (CET)",
        ),
    ];
    for (locale, zone, expected) in cases {
        let r = settings(zone)
            .render_in(&n, &tag(locale), &sample_brand())
            .unwrap();
        assert!(r.content.contains(expected), "{locale}: {}", r.content);
    }
}

#[test]
fn content_names_the_kinds_of_information_not_their_values() {
    let n = Notice::account_information_changed(
        at(),
        vec![
            InfoKind::FullName,
            InfoKind::EmailAddress,
            InfoKind::FullName,
        ],
    );
    assert!(
        text(&n, "en").contains(": email address and name."),
        "{}",
        text(&n, "en")
    );
    assert!(
        text(&n, "es").contains(": correo electrónico y nombre."),
        "{}",
        text(&n, "es")
    );
    assert!(
        text(&n, "de").contains(": E-Mail-Adresse und Name."),
        "{}",
        text(&n, "de")
    );
}

#[test]
fn english_uses_us_spelling_and_every_notice_names_a_way_to_reach_support() {
    let s = settings(chrono_tz::UTC);
    let contacts = [
        (
            "https://help.example.com",
            Brand {
                support_email: None,
                support_phone: None,
                ..sample_brand()
            },
        ),
        (
            "support@example.com",
            Brand {
                support_url: None,
                support_phone: None,
                ..sample_brand()
            },
        ),
        (
            "+1 800 555 0100",
            Brand {
                support_url: None,
                support_email: None,
                ..sample_brand()
            },
        ),
    ];
    for n in all_notices() {
        for locale in ["en", "es", "de"] {
            for (contact, brand) in &contacts {
                let r = s.render_in(&n, &tag(locale), brand).unwrap();
                assert!(
                    r.content.contains(contact),
                    "{locale} {:?}: {}",
                    n.kind(),
                    r.content
                );
                assert!(r.content.contains("Example Mobile"), "{}", r.content);
            }
        }
        let en = text(&n, "en").to_lowercase();
        for british in [
            "recognise",
            "cancelled",
            "organis",
            "authoris",
            "colour",
            "licence",
        ] {
            assert!(!en.contains(british), "{british}: {en}");
        }
    }
}

#[test]
fn routine_notices_are_not_alarming_and_security_ones_say_what_to_do() {
    for step in [Lifecycle::Renewed, Lifecycle::Activated] {
        let t = text(&Notice::subscription(step, at()), "en").to_lowercase();
        for word in ["right away", "take over", "recognize"] {
            assert!(!t.contains(word), "{word}: {t}");
        }
    }
    for n in [
        Notice::port_out_credentials_issued(at(), None),
        Notice::email_address_replaced(at(), vec![InfoKind::EmailAddress]),
    ] {
        let t = text(&n, "en");
        assert!(t.contains("Contact us right away"), "{t}");
    }
}

#[test]
fn a_sim_change_never_speaks_of_a_plan_and_neither_change_is_no_notice() {
    for sim in [SimKind::ESim, SimKind::PhysicalSim, SimKind::Unknown] {
        let n = Notice::subscription_changed(at(), Some(sim), None).unwrap();
        let t = text(&n, "en").to_lowercase();
        assert!(!t.contains("plan"), "{t}");
        assert!(t.contains("sim"), "{t}");
    }
    assert!(Notice::subscription_changed(at(), None, None).is_none());
    let both = Notice::subscription_changed(at(), Some(SimKind::ESim), Some(PlanName::new("X 5G")));
    let both = both.unwrap();
    assert_eq!(both.kind(), NoticeKind::SimAndPlanChanged);
    let t = text(&both, "en");
    assert!(t.contains("\"X 5G\"") && t.contains("eSIM"), "{t}");
}

#[test]
fn the_line_is_named_by_its_last_four_digits_and_the_actor_by_kind() {
    let n = Notice::sim_change_requested(at(), SimKind::ESim)
        .on_line(LastFour::of("+19591234567"))
        .by(Some(ActorKind::Support));
    let t = text(&n, "en");
    assert!(t.contains("ending in 4567"), "{t}");
    assert!(!t.contains("959123"), "{t}");
    assert!(t.contains("customer support"), "{t}");
    assert!(
        text(&n, "es").contains("terminada en 4567"),
        "{}",
        text(&n, "es")
    );
}

#[test]
fn cancel_only_port_outs_say_the_number_does_not_move() {
    let n = Notice::port_out(NoticeKind::PortOutRequested, at(), true);
    assert!(
        text(&n, "en").contains("without the number moving"),
        "{}",
        text(&n, "en")
    );
    let n = Notice::port_out(NoticeKind::PortOutRequested, at(), false);
    assert!(
        text(&n, "en").contains("to another provider"),
        "{}",
        text(&n, "en")
    );
}

#[test]
fn port_out_credentials_say_when_they_expire() {
    let expires = "2024-03-17T15:27:46Z".parse().unwrap();
    let n = Notice::port_out_credentials_issued(at(), Some(expires));
    let t = text(&n, "en");
    assert!(
        t.contains("They expire on March 17, 2024 at 3:27 PM UTC."),
        "{t}"
    );
}

#[test]
fn plan_name_is_the_only_free_text() {
    let n = Notice::subscription_changed(at(), None, Some(PlanName::new("Unlimited 5G"))).unwrap();
    assert!(text(&n, "en").contains("\"Unlimited 5G\""));
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
