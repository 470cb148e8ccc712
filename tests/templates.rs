//! Operator templates, black box: `templates check` and `serve` refuse a broken template
//! and a template naming a forbidden variable (file, line and variable named); a Spanish
//! user gets Spanish mail; the language falls back user → language → project → default;
//! a notice is rendered once, so a retry after a template change sends the stored text
//! under the same key.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::process::{base_env, BIN};
use common::*;
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A copy of the bundled templates in a temporary directory, for a test to edit.
fn template_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for locale in std::fs::read_dir(&src).unwrap() {
        let locale = locale.unwrap();
        let to = tmp.path().join(locale.file_name());
        std::fs::create_dir(&to).unwrap();
        for file in std::fs::read_dir(locale.path()).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
        }
    }
    let dir = tmp.path().to_path_buf();
    (tmp, dir)
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

fn run(env: &[(String, String)], args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().cloned())
        .output()
        .expect("binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// A syntax error in one file, a forbidden variable (on line 3) in another.
fn broken_set() -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = template_copy();
    write(
        &dir,
        "en/plan_changed.txt",
        "Hello,\n\n{% if plan %}Your plan is {{ plan }}.\n",
    );
    write(
        &dir,
        "es/subscription_created.txt",
        "Hola:\n\nSu suscripción se creó.\nEstimado {{ user.fullName }}, gracias.\n",
    );
    (tmp, dir)
}

#[test]
fn templates_check_names_each_broken_template_with_file_line_and_variable() {
    // Arrange
    let (_tmp, dir) = broken_set();
    let env = base_env(
        "sqlite://unused.db",
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
    );

    // Act
    let (code, out) = run(
        &env,
        &["templates", "check", "--dir", dir.to_str().unwrap()],
    );

    // Assert
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error: en/plan_changed.txt:3: syntax error"),
        "{out}"
    );
    assert!(
        out.contains("error: es/subscription_created.txt:4: variable `user` is not allowed"),
        "{out}"
    );
    assert!(out.contains("FAILED: 2 problem(s)"), "{out}");
}

#[test]
fn a_kind_missing_from_the_default_locale_fails_and_from_another_only_warns() {
    let (_tmp, dir) = template_copy();
    std::fs::remove_file(dir.join("de/address_added.txt")).unwrap();
    let env = base_env(
        "sqlite://unused.db",
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
    );
    let args = ["templates", "check", "--dir", dir.to_str().unwrap()];

    let (code, out) = run(&env, &args);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning: de: no complete address_added") && out.contains("de 18/19"),
        "{out}"
    );

    std::fs::remove_file(dir.join("en/address_added.subject")).unwrap();
    let (code, out) = run(&env, &args);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error: en/address_added.subject: missing"),
        "{out}"
    );
}

#[test]
fn serve_refuses_to_start_on_templates_that_do_not_check() {
    let (_tmp, dir) = broken_set();
    let db = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}", db.path().join("x.db").display());
    let mut env = base_env(&db_url, "http://127.0.0.1:9", "http://127.0.0.1:9");
    env.push(("TEMPLATES_DIR".into(), dir.display().to_string()));

    let (code, out) = run(&env, &["serve"]);

    assert_eq!(code, 2, "{out}");
    assert!(out.contains("TEMPLATES_DIR"), "{out}");
    assert!(out.contains("en/plan_changed.txt:3"), "{out}");
    assert!(
        out.contains("es/subscription_created.txt:4: variable `user` is not allowed"),
        "{out}"
    );
}

#[test]
fn preview_prints_a_kind_in_a_locale() {
    let env = base_env(
        "sqlite://unused.db",
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
    );
    let (code, out) = run(
        &env,
        &[
            "templates",
            "preview",
            "--kind",
            "sim_change_requested",
            "--locale",
            "es-MX",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("locale:  es\n"), "{out}");
    assert!(
        out.contains("subject: Se solicitó un cambio de SIM en su línea"),
        "{out}"
    );
    assert!(out.contains(SUPPORT_EMAIL), "{out}");
}

/// The Core API owner of every subscription reads `locale`; the project serves `project`.
async fn gigs_with_owner_locale(gigs: &MockServer, locale: &str, project: Option<&[&str]>) {
    if let Some(locales) = project {
        gigs_knows_the_project(gigs, locales).await;
    }
    let mut body = subscription_body("usr_owner", OWNER_EMAIL);
    body["user"]["preferredLocale"] = Value::from(locale);
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(format!(
            "^/projects/{PROJECT}/subscriptions/sub_[A-Za-z0-9]+$"
        )))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(gigs)
        .await;
}

async fn a_spanish_user_gets_spanish_mail_end_to_end(b: Backend) {
    // Arrange
    let app = spawn_app(b).await;
    mail_accepts(&app.mail).await;
    gigs_knows_everyone(&app.gigs).await;
    let body = fixture("subscription.activated.es.json");

    // Act
    let (status, _) = app.deliver(&body).await;
    app.wait_idle().await;

    // Assert
    assert_eq!(status, 202);
    let mails = app.mails().await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let m = &mails[0].1;
    assert_eq!(m["to"], "maria.rodriguez@example.com");
    assert_eq!(m["subject"], "Su suscripción ya está activa");
    let content = m["content"].as_str().unwrap();
    assert!(content.starts_with("Hola:"), "{content}");
    assert!(
        content.contains("Su suscripción a Acme Mobile de la línea terminada en 0199"),
        "{content}"
    );
    assert!(
        content.contains("16 de marzo de 2022 a las 14:20 (UTC)"),
        "{content}"
    );
    assert!(
        content.contains(&format!("escriba a {SUPPORT_EMAIL}")),
        "{content}"
    );
    assert!(
        m.get("html").is_none(),
        "no HTML template, no html field: {m}"
    );
    for value in personal_values(&body) {
        assert!(!content.contains(&value), "{value:?} leaked: {content}");
    }
}

/// A user's locale, the project's locales (`None`: unknown project), DEFAULT_LOCALE if set,
/// and how the mail must begin.
type Fallback = (
    &'static str,
    Option<&'static [&'static str]>,
    Option<&'static str>,
    &'static str,
);

async fn the_language_falls_back_from_user_to_project_to_default(b: Backend) {
    let cases: [Fallback; 4] = [
        // The user's language alone: de-CH has no templates, de has.
        ("de-CH", Some(&["en-US"]), None, "Guten Tag,"),
        // No French: the project's first locale that has templates.
        ("fr-CA", Some(&["it-IT", "es-US", "en-US"]), None, "Hola:"),
        // Neither: DEFAULT_LOCALE.
        ("fr-CA", Some(&["it-IT"]), Some("de"), "Guten Tag,"),
        // The project unknown to the Core API (404): DEFAULT_LOCALE still.
        ("pt-BR", None, None, "Hello,"),
    ];
    for (user, project, default, greeting) in cases {
        let app = spawn_app_with(b, |s| {
            if let Some(d) = default {
                s.set("DEFAULT_LOCALE", d);
            }
        })
        .await;
        mail_accepts(&app.mail).await;
        gigs_with_owner_locale(&app.gigs, user, project).await;

        app.deliver(&fixture("portOutCredentials.issued.json"))
            .await;
        app.wait_idle().await;

        let mails = app.mails().await;
        assert_eq!(mails.len(), 1, "{user}: {mails:?}");
        let content = mails[0].1["content"].as_str().unwrap().to_string();
        assert!(
            content.starts_with(greeting),
            "{user} {project:?}: {content}"
        );
        app.stop().await;
    }
}

/// A notice is rendered once: after a failed send and a template change (and a restart to
/// load it), the retry sends the stored text and HTML under the same key; a new event gets
/// the new text.
async fn a_retry_after_a_template_change_sends_the_stored_rendering(b: Backend) {
    // Arrange: version 1 of the subscription_activated templates, with an HTML body.
    let (_tmp, dir) = template_copy();
    write(
        &dir,
        "en/subscription_activated.subject",
        "Active now (v1)\n",
    );
    write(
        &dir,
        "en/subscription_activated.html",
        "<p>Version one, {{ brand.name }}.</p>\n",
    );
    let templates = dir.display().to_string();
    let app = spawn_app_with(b, |s| {
        s.set("TEMPLATES_DIR", templates.clone());
    })
    .await;
    gigs_knows_everyone(&app.gigs).await;
    mail_answers_first(&app.mail, 503, u64::MAX, 1).await;
    app.deliver(&fixture("subscription.activated.json")).await;
    let first_key = loop {
        if let Some((key, _)) = app.mails().await.into_iter().next() {
            break key;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let db_url = app.db.as_ref().unwrap().url.clone();
    let (gigs, mail, db) = app.stop().await;

    // Act: version 2 on disk, the service restarted on it, the mail service back.
    write(
        &dir,
        "en/subscription_activated.subject",
        "Active now (v2)\n",
    );
    write(
        &dir,
        "en/subscription_activated.html",
        "<p>Version two.</p>\n",
    );
    mail.reset().await;
    mail_accepts(&mail).await;
    let mut raw = test_settings(&db_url, &gigs.uri(), &mail.uri());
    raw.set("TEMPLATES_DIR", templates.clone());
    let mut app = start(raw, gigs, mail).await;
    app.db = db;
    app.wait_idle().await;
    let retried = app.mails().await;
    app.deliver(&with_id(
        &fixture("subscription.activated.json"),
        "evt_afterChange",
    ))
    .await;
    app.wait_idle().await;

    // Assert
    assert_eq!(retried.len(), 1, "{retried:?}");
    let (key, m) = &retried[0];
    assert_eq!(key, &first_key);
    assert_eq!(m["subject"], "Active now (v1)");
    assert_eq!(m["html"], "<p>Version one, Acme Mobile.</p>");
    let all = app.mails().await;
    let fresh = &all.last().unwrap().1;
    assert_eq!(fresh["subject"], "Active now (v2)");
    assert_eq!(fresh["html"], "<p>Version two.</p>");
}

both_backends!(
    a_spanish_user_gets_spanish_mail_end_to_end,
    the_language_falls_back_from_user_to_project_to_default,
    a_retry_after_a_template_change_sends_the_stored_rendering,
);
