//! Random people for the redaction properties: personal values of recognizable shapes for
//! every personal field of an event and of the Core API's answers, and helpers that put
//! them (and a language) into fixtures.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;

/// One person's values by field name; `previousData.…` are the values before a change,
/// `owner.…` the Core API's answer about a subscription's owner.
#[derive(Debug, Clone)]
pub struct Person(BTreeMap<&'static str, String>);

impl Person {
    pub fn get(&self, field: &str) -> &str {
        &self.0[field]
    }

    /// The value for a field named `key` (in `previousData` when `previous`).
    pub fn value_for(&self, key: &str, previous: bool) -> Option<&str> {
        let prefix = if previous { "previousData." } else { "" };
        self.0
            .get(format!("{prefix}{key}").as_str())
            .map(String::as_str)
    }

    pub fn values(&self) -> Vec<&str> {
        self.0.values().map(String::as_str).collect()
    }

    /// The first of this person's values that `text` contains.
    pub fn found_in(&self, text: &str) -> Option<&str> {
        self.values().into_iter().find(|v| text.contains(v))
    }
}

pub const NAME: &str = "[A-Z][a-zà-öø-ÿ]{3,9} [A-Z][a-zà-öø-ÿ]{3,9}\
    |[ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ][α-ω]{3,9} [ΑΒΓΔΕΖΗΘΚΛΜΝΠΣΤΦΩ][α-ω]{3,9}\
    |[\u{4e00}-\u{9fa5}]{3,6}";
pub const BIRTHDAY: &str = "19[3-9][0-9]-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])";

/// Each field, with the shape of its values.
#[rustfmt::skip]
pub const FIELDS: &[(&str, &str)] = &[
    ("email", "[a-z]{6,12}\\.[a-zà-ö]{2,6}@[a-z]{4,8}\\.example"),
    ("previousData.email", "[a-z]{6,12}@[a-z]{4,8}\\.example\\.net"),
    ("owner.email", "[a-z]{6,12}\\+[a-z0-9]{2,4}@[a-z]{4,8}\\.example\\.org"),
    ("fullName", NAME),
    ("previousData.fullName", NAME),
    ("owner.fullName", NAME),
    ("firstName", "[A-Z][a-zà-öø-ÿ]{5,10}"),
    ("lastName", "[A-Z][a-zà-öø-ÿ]{5,10}"),
    ("birthday", BIRTHDAY),
    ("previousData.birthday", BIRTHDAY),
    ("phoneNumber", "\\+1[2-9][0-9]{9}"),
    ("iccid", "89[0-9]{17,18}"),
    ("accountNumber", "[0-9]{12,16}"),
    ("accountPin", "[0-9]{10,12}"),
    ("line1", "[1-9][0-9]{1,3} [A-Z][a-zäöüß]{4,10} (Street|Road|Avenue|Straße)"),
    ("line2", "(Apartment|Suite|Floor) [1-9][0-9]{0,2}[A-F]"),
    ("city", "[A-Z][a-zéèêàç]{5,12}"),
    ("postalCode", "[0-9]{5}-[0-9]{4}"),
    ("activationCode", "LPA:1\\$smdp[a-z]{4}\\.example\\$[A-Z0-9]{10}"),
    ("qrCodeUrl", "https://qr[a-z]{4}\\.example/[A-Z0-9]{10}\\.png"),
];

pub fn person() -> impl Strategy<Value = Person> {
    let shapes: Vec<&str> = FIELDS.iter().map(|(_, shape)| *shape).collect();
    shapes.prop_map(|values| Person(FIELDS.iter().map(|(f, _)| *f).zip(values).collect()))
}

/// `body` with every personal field replaced by the person's value for it.
pub fn personalise(body: &str, p: &Person) -> String {
    fn walk(v: &mut Value, previous: bool, p: &Person) {
        match v {
            Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    match (v.is_string(), p.value_for(k, previous)) {
                        (true, Some(new)) => *v = Value::String(new.to_string()),
                        _ => walk(v, previous || k == "previousData", p),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|v| walk(v, previous, p)),
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_str(body).unwrap();
    walk(&mut v, false, p);
    v.to_string()
}

/// The bundled locales the cases cycle through, with how each one's mails begin.
pub const LOCALES: &[(&str, &str)] = &[
    ("en-US", "Hello,"),
    ("es-MX", "Hola:"),
    ("de-DE", "Guten Tag,"),
];

/// `body` with every `preferredLocale` set to `locale`.
pub fn in_locale(body: &str, locale: &str) -> String {
    fn walk(v: &mut Value, locale: &str) {
        match v {
            Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    if k == "preferredLocale" && v.is_string() {
                        *v = Value::from(locale);
                    } else {
                        walk(v, locale);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|v| walk(v, locale)),
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_str(body).unwrap();
    walk(&mut v, locale);
    v.to_string()
}

/// Fail with the offending text, cut short.
pub fn leak(what: &str, value: &str, text: &str) -> TestCaseError {
    let cut: String = text.chars().take(400).collect();
    TestCaseError::fail(format!("{value:?} reached {what}: {cut}"))
}
