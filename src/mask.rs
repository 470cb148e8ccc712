//! Masking stored payloads for operators (`dead-letters show`): every string and number is
//! hidden unless its key is on a short allow-list of ids, types, states and timestamps.
//! An allow-list, not a block-list, so a field Gigs adds tomorrow is masked by default.

use serde_json::Value;

const ALLOWED: &[&str] = &[
    "object",
    "id",
    "type",
    "status",
    "project",
    "source",
    "specversion",
    "version",
    "datacontenttype",
    "time",
    "subscription",
    "user",
    "plan",
    "provider",
    "simTypes",
    "dataUnit",
    "smsUnit",
    "voiceUnit",
];

fn allowed(key: &str) -> bool {
    ALLOWED.contains(&key) || (key.ends_with("At") && key.len() > 2)
}

/// A copy of `value` with personal values replaced by `"***"`.
pub fn mask(value: &Value) -> Value {
    mask_under(None, value)
}

fn mask_under(key: Option<&str>, value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), mask_under(Some(k), v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| mask_under(key, v)).collect()),
        Value::String(_) | Value::Number(_) if key.is_some_and(allowed) => value.clone(),
        Value::String(_) | Value::Number(_) => Value::String("***".into()),
        Value::Bool(_) | Value::Null => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_values_are_masked_ids_and_times_kept() {
        let v: Value =
            serde_json::from_str(include_str!("../fixtures/subscription.created.json")).unwrap();
        let masked = serde_json::to_string(&mask(&v)).unwrap();
        for secret in [
            "jerry@example.com",
            "Jerry Seinfeld",
            "2017-07-21",
            "+19591234567",
            "123456789",
            "89883070000007537119",
            "129 West 81st Street",
            "Seinfeld",
        ] {
            assert!(!masked.contains(secret), "{secret} leaked");
        }
        for kept in [
            "evt_0SNlurA049MEWV5gNTcQ5A07h3Ol",
            "usr_0SNlurA049MEWV4OpCwsNyC9Kn2d",
            "com.gigs.subscription.created",
            "2021-01-21T19:38:34Z",
        ] {
            assert!(masked.contains(kept), "{kept} masked");
        }
    }
}
