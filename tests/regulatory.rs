//! The notices US rules ask for (FCC 23-95: SIM change and port-out requests; 47 CFR
//! 64.2010(f): address of record and contact details), black box on both backends.

mod common;

use common::*;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

/// Deliver `fixture_name` and return the mails it produced.
async fn mails_for(app: &TestApp, fixture_name: &str) -> Vec<Value> {
    let (status, answer) = app.deliver(&fixture(fixture_name)).await;
    assert_eq!(status, 202, "{fixture_name}: {answer}");
    app.wait_idle().await;
    app.mails().await.into_iter().map(|(_, m)| m).collect()
}

/// One mail to the owner, of `subject`, naming the line by `0147` and no personal value
/// of the event or the Core API.
fn assert_one_notice(name: &str, mails: &[Value], subject: &str, names_line: bool) {
    assert_eq!(mails.len(), 1, "{name}: {mails:?}");
    let m = &mails[0];
    assert_eq!(m["to"], OWNER_EMAIL, "{name}");
    assert_eq!(m["subject"], subject, "{name}");
    let text = format!("{} {}", m["subject"], m["content"]);
    let mut personal = personal_values(&fixture(name));
    personal.extend([
        OWNER_PHONE.to_string(),
        "Owner Person".to_string(),
        "1961-02-03".into(),
    ]);
    for value in personal {
        assert!(!text.contains(&value), "{name}: {value:?} leaked: {text}");
    }
    assert_eq!(
        text.contains("ending in 0147"),
        names_line,
        "{name}: {text}"
    );
}

async fn every_new_event_type_tells_the_owner_without_disclosing_anything(b: Backend) {
    let cases = [
        (
            "subscriptionChange.created.json",
            "A SIM change was requested on your line",
            true,
        ),
        (
            "subscriptionChange.applied.sim.json",
            "The SIM for your line was changed",
            true,
        ),
        (
            "subscriptionChange.applied.both.json",
            "The SIM and the plan for your line were changed",
            true,
        ),
        (
            "subscriptionChange.failed.json",
            "The requested SIM change did not happen",
            true,
        ),
        (
            "subscriptionChange.canceled.json",
            "The requested SIM change did not happen",
            true,
        ),
        (
            "portOut.created.json",
            "A request to move your number to another provider was made",
            true,
        ),
        (
            "portOut.created.cancelOnly.json",
            "A request to cancel your service was made",
            true,
        ),
        (
            "portOut.completed.json",
            "Your number was moved to another provider",
            true,
        ),
        (
            "portOut.expired.json",
            "The request to move your number did not go through",
            true,
        ),
        (
            "portOut.failed.json",
            "The request to move your number did not go through",
            true,
        ),
        (
            "user.address.created.json",
            "An address was added to your account",
            false,
        ),
        (
            "user.address.deleted.json",
            "An address was removed from your account",
            false,
        ),
    ];
    for (name, subject, names_line) in cases {
        let app = spawn_app(b).await;
        mail_accepts(&app.mail).await;
        gigs_knows_everyone(&app.gigs).await;
        let mails = mails_for(&app, name).await;
        assert_one_notice(name, &mails, subject, names_line);
        app.stop().await;
    }
}

async fn a_sim_swap_never_speaks_of_a_plan_and_an_empty_change_sends_nothing(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;

    let swap = mails_for(&app, "subscriptionChange.applied.sim.json").await;
    let text = format!("{} {}", swap[0]["subject"], swap[0]["content"]).to_lowercase();
    assert!(!text.contains("plan"), "{text}");
    assert!(text.contains("physical sim"), "{text}");
    let after_neither = mails_for(&app, "subscriptionChange.applied.neither.json").await;

    assert_eq!(
        after_neither.len(),
        1,
        "a change of neither SIM nor plan sends nothing"
    );
    assert_eq!(app.count("events", "done").await, 2);
}

async fn the_sim_change_request_says_who_asked(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;

    let mails = mails_for(&app, "subscriptionChange.created.json").await;

    let content = mails[0]["content"].as_str().unwrap();
    assert!(content.contains("customer support"), "{content}");
    assert!(content.contains("an eSIM"), "{content}");
    assert!(
        !content.contains("mbr_"),
        "an actor is a kind, never an id: {content}"
    );
}

/// Two lines of one customer: each notice names its own line.
async fn two_subscriptions_of_one_user_get_notices_naming_different_lines(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    for (sub, phone) in [
        ("sub_lineOne", "+15555550101"),
        ("sub_lineTwo", "+15555550202"),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("/projects/{PROJECT}/subscriptions/{sub}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "id": sub, "phoneNumber": phone,
                "user": {"id": "usr_owner", "email": OWNER_EMAIL}
            })))
            .mount(&app.gigs)
            .await;
    }
    for (i, sub) in ["sub_lineOne", "sub_lineTwo"].iter().enumerate() {
        let mut v: Value =
            serde_json::from_str(&fixture("subscriptionChange.created.json")).unwrap();
        v["id"] = Value::from(format!("evt_twolines{i}"));
        v["data"]["subscription"] = Value::from(*sub);
        assert_eq!(app.deliver(&v.to_string()).await.0, 202);
    }
    app.wait_idle().await;

    let mut lines: Vec<String> = app
        .mails()
        .await
        .iter()
        .map(|(_, m)| m["content"].as_str().unwrap().to_string())
        .map(|c| c.split("ending in ").nth(1).unwrap()[..4].to_string())
        .collect();
    lines.sort();
    assert_eq!(lines, ["0101", "0202"]);
}

async fn a_user_without_a_subscription_hears_nothing_of_an_address(b: Backend) {
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_user_without_subscription(&app, "usr_0SNlurA049MEWV4OpCwsNyC9Kn2d").await;
    gigs_knows_everyone(&app.gigs).await;

    let mails = mails_for(&app, "user.address.created.json").await;

    assert!(mails.is_empty(), "{mails:?}");
    assert_eq!(app.count("events", "done").await, 1);
}

async fn a_disabled_kind_sends_nothing_and_others_still_go(b: Backend) {
    let app = spawn_app_with(b, |raw| {
        raw.set(
            "NOTICE_KINDS_DISABLED",
            "subscription_renewed, address_added",
        );
    })
    .await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;

    assert!(mails_for(&app, "subscription.renewed.json")
        .await
        .is_empty());
    assert!(mails_for(&app, "user.address.created.json")
        .await
        .is_empty());
    assert_eq!(mails_for(&app, "user.address.deleted.json").await.len(), 1);
    assert_eq!(app.count("events", "done").await, 3);
}

both_backends!(
    every_new_event_type_tells_the_owner_without_disclosing_anything,
    a_sim_swap_never_speaks_of_a_plan_and_an_empty_change_sends_nothing,
    the_sim_change_request_says_who_asked,
    two_subscriptions_of_one_user_get_notices_naming_different_lines,
    a_user_without_a_subscription_hears_nothing_of_an_address,
    a_disabled_kind_sends_nothing_and_others_still_go,
);

#[test]
fn an_unknown_notice_kind_is_a_settings_error_naming_the_known_ones() {
    let mut raw = test_settings("sqlite://x.db", "http://127.0.0.1:9", "http://127.0.0.1:9");
    raw.set("NOTICE_KINDS_DISABLED", "sim_change_requested,plan_chnaged");
    let err = raw.into_settings().unwrap_err();
    assert_eq!(err.name, "NOTICE_KINDS_DISABLED");
    assert!(err.problem.contains("\"plan_chnaged\""), "{err}");
    assert!(err.problem.contains("port_out_requested"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_off_a_required_kind_warns_naming_the_rule() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut env = common::process::base_env(&db.url, "http://127.0.0.1:9", "http://127.0.0.1:9");
    env.push(("NOTICE_KINDS_DISABLED".into(), "port_out_requested".into()));

    let mut served = common::process::serve(&env);
    served.terminate();

    let log = served.log.lock().unwrap().join("\n");
    let warning = log
        .lines()
        .find(|l| l.contains("port_out_requested"))
        .unwrap_or_else(|| panic!("no warning:\n{log}"));
    assert!(
        warning.contains("WARN") && warning.contains("FCC 23-95"),
        "{warning}"
    );
}
