//! Settings: layering, validation, and that no secret is ever shown.

use super::*;

fn base() -> RawSettings {
    let mut raw = RawSettings::defaults();
    raw.set(
        "GIGS_WEBHOOK_SECRET",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    .set("GIGS_PROJECT", "acme")
    .set("GIGS_TOKEN", "12345")
    .set("MAIL_URL", "http://127.0.0.1:9/mail")
    .set("SUPPORT_EMAIL", "help@acme.example");
    raw
}

#[test]
fn valid_settings_load_with_defaults() {
    let s = base().into_settings().unwrap();
    assert_eq!(s.webhook_secrets.len(), 1);
    assert_eq!(s.body_limit_bytes, 1024 * 1024);
    assert_eq!(s.listen_addr.port(), 8080);
    assert_eq!(s.notice_fields, ["email", "fullName", "birthday"]);
    assert_eq!(s.max_age, Duration::from_secs(3 * 86_400));
    assert_eq!(s.max_connections, 512);
    assert_eq!(s.header_read_timeout, Duration::from_secs(5));
    assert_eq!(s.body_read_timeout, Duration::from_secs(10));
    assert_eq!(s.idle_timeout, Duration::from_secs(30));
    assert_eq!(s.drain, Duration::from_secs(5));
    assert_eq!(s.audit_retention, Duration::from_secs(1095 * 86_400));
    assert!(s.store.audit_key.is_none());
    assert!(!s.worker_paused);
}

#[test]
fn rotated_secrets_are_comma_separated() {
    let mut raw = base();
    raw.set(
        "GIGS_WEBHOOK_SECRET",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    );
    assert_eq!(raw.into_settings().unwrap().webhook_secrets.len(), 2);
}

#[test]
fn bad_settings_name_the_variable_and_hide_the_value() {
    let cases = [
        ("GIGS_WEBHOOK_SECRET", "whsec_not*base64"),
        ("GIGS_WEBHOOK_SECRET", "whsec_c2hvcnQ="),
        ("MAIL_URL", "not a url"),
        ("GIGS_API_URL", "ftp://example.com"),
        ("LISTEN_ADDR", "8080"),
        ("LEASE_SECS", "soon"),
        ("DATABASE_URL", "mysql://x"),
        ("MAX_CONNECTIONS", "0"),
        ("HEADER_READ_TIMEOUT_SECS", "0"),
        ("BODY_READ_TIMEOUT_SECS", "0"),
        ("IDLE_TIMEOUT_SECS", "0"),
        ("AUDIT_HASH_KEY", "too-short-a-secret"),
        ("AUDIT_RETENTION_DAYS", "213503982334602"),
        ("WORKER_PAUSED", "yes"),
        ("DRAIN_SECS", "-1"),
    ];
    for (key, value) in cases {
        let mut raw = base();
        raw.set(key, value);
        let err = raw.into_settings().unwrap_err();
        assert_eq!(err.name, key, "{value}");
        if key == "GIGS_WEBHOOK_SECRET" || key == "AUDIT_HASH_KEY" {
            assert!(!err.to_string().contains(value), "secret echoed: {err}");
        }
    }
}

#[test]
fn settings_too_large_to_multiply_are_refused_not_wrapped() {
    let most = u64::MAX / 86_400;
    let mut raw = base();
    raw.set("RETENTION_DAYS", most.to_string());
    let s = raw.into_settings().unwrap();
    assert_eq!(s.retention, Duration::from_secs(most * 86_400));
    for days in [most + 1, u64::MAX / 1000, u64::MAX] {
        let mut raw = base();
        raw.set("RETENTION_DAYS", days.to_string());
        let err = raw.into_settings().unwrap_err();
        assert_eq!(err.name, "RETENTION_DAYS", "{days}");
        assert!(err.problem.contains("at most"), "{err}");
    }
    // Too large for the number type at all: still named, still no panic.
    let mut raw = base();
    raw.set("RETENTION_DAYS", "184467440737095516150");
    assert_eq!(raw.into_settings().unwrap_err().name, "RETENTION_DAYS");
}

#[test]
fn missing_required_setting_is_reported() {
    let mut raw = base();
    raw.set("GIGS_TOKEN", "");
    let err = raw.into_settings().unwrap_err();
    assert_eq!(err.to_string(), "GIGS_TOKEN: is required but not set");
}

#[test]
fn toml_keys_are_lower_case_names_and_env_wins() {
    let mut raw = base();
    raw.merge_toml("lease_secs = 7\nmail_url = \"http://file.example/mail\"\n")
        .unwrap();
    raw.merge_env(
        [(
            "MAIL_URL".to_string(),
            "http://env.example/mail".to_string(),
        )]
        .into_iter(),
    );
    let s = raw.into_settings().unwrap();
    assert_eq!(s.lease, Duration::from_secs(7));
    assert_eq!(s.mail_url.as_str(), "http://env.example/mail");
}

#[test]
fn example_config_documents_every_key_and_loads() {
    let text = include_str!("../../config/gigs-notifier.example.toml");
    for (key, _) in KEYS {
        assert!(
            text.contains(&key.to_ascii_lowercase()),
            "{key} is not documented"
        );
    }
    let mut raw = RawSettings::defaults();
    raw.merge_toml(text).unwrap();
    raw.into_settings().unwrap();
}

#[test]
fn unknown_toml_key_is_rejected() {
    let err = base().merge_toml("mail_ulr = \"x\"").unwrap_err();
    assert_eq!(err.name, "mail_ulr");
}

#[test]
fn database_password_does_not_show_in_debug() {
    let mut raw = base();
    raw.set("DATABASE_URL", "postgres://app:hunter2secret@db:5432/gigs");
    let s = raw.into_settings().unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("hunter2secret"), "{dbg}");
    assert!(dbg.contains("db:5432"), "{dbg}");
}

#[test]
fn secrets_do_not_show_in_debug() {
    let s = base().into_settings().unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("MfKQ9r8"));
    assert!(!dbg.contains("12345"));
}

#[test]
fn brand_settings_are_validated_and_named() {
    let s = base().into_settings().unwrap();
    assert_eq!(s.notices.zone, chrono_tz::UTC);
    assert_eq!(s.notices.brand.name, None);
    assert_eq!(s.notices.templates.default_locale().as_str(), "en");
    let mut raw = base();
    raw.set("DISPLAY_TIMEZONE", "America/Chicago")
        .set("BRAND_NAME", " Acme Mobile ")
        .set("DEFAULT_LOCALE", "es");
    let s = raw.into_settings().unwrap();
    assert_eq!(s.notices.zone, chrono_tz::America::Chicago);
    assert_eq!(s.notices.brand.name.as_deref(), Some("Acme Mobile"));
    assert_eq!(s.notices.templates.default_locale().as_str(), "es");
    for (key, value) in [
        ("DISPLAY_TIMEZONE", "Mars/Olympus_Mons"),
        ("DISPLAY_TIMEZONE", "EST5EDTX"),
        ("DEFAULT_LOCALE", "english!"),
        ("SUPPORT_URL", "ftp://help.example"),
        ("SUPPORT_EMAIL", "not an address"),
        ("SUPPORT_PHONE", "call us"),
    ] {
        let mut raw = base();
        raw.set(key, value);
        let err = raw.into_settings().unwrap_err();
        assert_eq!(err.name, key, "{value}: {err}");
    }
    // A default locale with no templates is a template problem, named by file.
    let mut raw = base();
    raw.set("DEFAULT_LOCALE", "fr");
    let err = raw.into_settings().unwrap_err();
    assert_eq!(err.name, "TEMPLATES_DIR");
    assert!(err.problem.contains("fr/"), "{err}");
}

#[test]
fn serve_needs_a_way_to_reach_support() {
    let mut raw = base();
    raw.set("SUPPORT_EMAIL", "");
    let err = raw.into_settings().unwrap_err();
    assert_eq!(err.name, "SUPPORT_URL");
    assert!(err.problem.contains("SUPPORT_PHONE"), "{err}");
    let mut raw = base();
    raw.set("SUPPORT_EMAIL", "")
        .set("SUPPORT_PHONE", "+1 (800) 555-0100");
    assert!(raw.into_settings().is_ok());
}
