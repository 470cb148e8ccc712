//! Envelope and data decoding.

use super::*;

const CREATED: &str = include_str!("../../fixtures/subscription.created.json");

fn decoded(body: &[u8]) -> Decoded {
    Decoded::decode(body).unwrap().expect("a handled type")
}

#[test]
fn parses_the_published_subscription_created_example() {
    let env = Envelope::parse(CREATED.as_bytes()).unwrap();
    assert_eq!(env.event_type, "com.gigs.subscription.created");
    assert!(env.handled.is_some());
    let TypedEvent::Subscription(Lifecycle::Created, sub) = decoded(CREATED.as_bytes()).event
    else {
        panic!("wrong type");
    };
    let user = sub.user.unwrap();
    assert_eq!(user.id.as_str(), "usr_0SNlurA049MEWV4OpCwsNyC9Kn2d");
    assert!(user.email.is_some());
}

#[test]
fn tolerates_fractional_time_missing_optionals_and_unknown_fields() {
    let body = br#"{"id":"evt_1","type":"com.gigs.subscriptionChange.applied","time":"2024-03-10T15:27:46.123456Z",
        "brandNew":{"x":1},"data":{"subscription":"sub_1","plan":"pln_1","extra":true}}"#;
    let d = decoded(body);
    assert!(d.time.is_some());
    let TypedEvent::SubscriptionChange(ChangeStep::Applied, c) = d.event else {
        panic!()
    };
    assert_eq!(c.subscription.as_str(), "sub_1");
    // A plan given by id only: present, without a name.
    assert_eq!(c.plan, Some(PlanRef { name: None }));
    assert!(c.sim.is_none());
}

#[test]
fn unhandled_types_parse_without_data_decoding() {
    let body = br#"{"id":"evt_2","type":"com.gigs.sim.activated","data":{}}"#;
    assert!(Envelope::parse(body).unwrap().handled.is_none());
    assert!(Decoded::decode(body).unwrap().is_none());
}

#[test]
fn the_envelope_needs_only_an_id_and_a_type() {
    for body in [
        &br#"{"id":"evt_3","type":"com.gigs.user.updated","data":"x"}"#[..],
        br#"{"id":"evt_3","type":"com.gigs.user.updated"}"#,
        br#"{"id":"evt_3","type":"com.gigs.user.updated","time":12,"data":{"id":5}}"#,
    ] {
        assert!(Envelope::parse(body).is_ok());
        assert_eq!(
            Decoded::decode(body).unwrap_err().code(),
            "invalid_event_data"
        );
    }
}

#[test]
fn bad_bodies_are_classified_without_quoting_values() {
    assert_eq!(
        Envelope::parse(b"{not json").unwrap_err().code(),
        "invalid_json"
    );
    assert_eq!(
        Envelope::parse(b"[]").unwrap_err().code(),
        "invalid_envelope"
    );
    assert_eq!(
        Envelope::parse(br#"{"type":"com.gigs.user.updated","data":{}}"#)
            .unwrap_err()
            .code(),
        "invalid_envelope"
    );
    let e = Decoded::decode(
        br#"{"id":"evt_4","type":"com.gigs.portOutCredentials.issued","data":{"subscription":"jerry@example.com"}}"#,
    )
    .unwrap_err();
    assert_eq!(e.code(), "invalid_event_data");
    assert!(!e.to_string().contains("jerry"), "{e}");
    let e = Decoded::decode(
        br#"{"id":"evt_5","type":"com.gigs.user.updated","data":{"id":12345678},"previousData":{}}"#,
    )
    .unwrap_err();
    assert!(!e.to_string().contains("12345678"), "{e}");
}

#[test]
fn an_unused_field_cannot_fail_the_event() {
    let body = br#"{"id":"evt_7","type":"com.gigs.subscription.ended","time":null,
        "data":{"id":"sub_1","plan":1e400,"x":[1e999]}}"#;
    assert!(matches!(decoded(body).event, TypedEvent::Subscription(..)));
    // A plan change uses the plan's name, and nothing else in it.
    let body = br#"{"id":"evt_8","type":"com.gigs.subscriptionChange.applied",
        "data":{"subscription":"sub_1","plan":{"id":"pln_1","name":"Gigs Global","price":1e400}}}"#;
    let TypedEvent::SubscriptionChange(_, c) = decoded(body).event else {
        panic!()
    };
    assert_eq!(c.plan.unwrap().name.unwrap().as_str(), "Gigs Global");
}

#[test]
fn user_updated_lists_changed_fields_and_previous_email() {
    let body = br#"{"id":"evt_6","type":"com.gigs.user.updated","data":{"id":"usr_1","email":"new@example.com","fullName":"X"},
        "previousData":{"email":"old@example.com","fullName":"Y","birthday":1e400}}"#;
    let TypedEvent::UserUpdated(u) = decoded(body).event else {
        panic!()
    };
    assert_eq!(u.changed_fields, ["birthday", "email", "fullName"]);
    assert_eq!(u.previous_email.unwrap().expose(), "old@example.com");
    assert_eq!(u.user.email.unwrap().expose(), "new@example.com");
}

#[test]
fn a_sim_change_reads_the_sim_type_and_nothing_else() {
    let body = br#"{"id":"evt_9","type":"com.gigs.subscriptionChange.created","actor":{"type":"member","member":"mbr_1"},
        "data":{"subscription":"sub_1","plan":null,"sim":{"object":"sim","id":"sim_1","iccid":"8901260882291734512","type":"eSIM"}}}"#;
    let d = decoded(body);
    assert_eq!(d.actor, Some(ActorKind::Support));
    let TypedEvent::SubscriptionChange(ChangeStep::Created, c) = d.event else {
        panic!()
    };
    assert!(c.plan.is_none());
    assert_eq!(c.sim.unwrap().kind, SimKind::ESim);
    assert!(!format!("{c:?}").contains("8901260882291734512"));
}

#[test]
fn port_outs_and_addresses_decode_their_user() {
    let body = br#"{"id":"evt_10","type":"com.gigs.portOut.created","data":{"object":"portOut","id":"pto_1",
        "behavior":"cancelOnly","status":"initiated","subscription":"sub_1","user":"usr_1"}}"#;
    let TypedEvent::PortOut(PortOutStep::Created, p) = decoded(body).event else {
        panic!()
    };
    assert_eq!(p.user.as_str(), "usr_1");
    assert_eq!(p.behavior, PortOutBehavior::CancelOnly);
    let body = br#"{"id":"evt_11","type":"com.gigs.user.address.created","data":{"object":"userAddress","id":"adr_1",
        "user":"usr_2","line1":"129 West 81st Street","city":"New York"}}"#;
    let TypedEvent::UserAddress(AddressStep::Created, a) = decoded(body).event else {
        panic!()
    };
    assert_eq!(a.user.as_str(), "usr_2");
    assert!(!format!("{a:?}").contains("81st"));
}
