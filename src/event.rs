//! The CloudEvents-shaped envelope Gigs sends, and the typed data of the events we handle.
//!
//! Only the fields a notice needs are decoded; everything else (names, PINs, account
//! numbers, addresses, ICCIDs, …) is skipped by serde and never held in a typed value.
//! Unknown fields are ignored and optional fields may be missing, because Gigs adds fields
//! without a version change.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::domain::{EmailAddress, EventId, PlanName, SubscriptionId, UserId};

/// Why a body is not an event we can take. Messages never quote values from the body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("body is not valid JSON ({0})")]
    NotJson(String),
    #[error("body is not a Gigs event envelope ({0})")]
    NotEnvelope(String),
    #[error("data of {event_type} is not usable ({reason})")]
    InvalidData { event_type: String, reason: String },
}

impl EnvelopeError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "invalid_json",
            Self::NotEnvelope(_) => "invalid_envelope",
            Self::InvalidData { .. } => "invalid_event_data",
        }
    }
}

/// serde's messages can quote the offending value ("invalid type: string \"jerry@…\"");
/// keep the shape of the problem and drop the value.
fn describe(err: &serde_json::Error) -> String {
    let msg = err.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg);
    let msg = if let Some(rest) = msg
        .strip_prefix("invalid type: ")
        .or_else(|| msg.strip_prefix("invalid value: "))
    {
        let kind = rest.split([' ', ',']).next().unwrap_or("value");
        let expected = rest
            .split_once(", expected ")
            .map(|(_, e)| e)
            .unwrap_or("another type");
        format!("a field holds {kind} where {expected} is expected")
    } else {
        // Drop anything quoted; field names come in backticks and stay.
        let mut out = String::new();
        let mut in_quote = false;
        for c in msg.chars() {
            if c == '"' {
                if !in_quote {
                    out.push_str("\"…\"");
                }
                in_quote = !in_quote;
            } else if !in_quote {
                out.push(c);
            }
        }
        out
    };
    format!("{msg} at line {} column {}", err.line(), err.column())
}

/// The lifecycle steps of a subscription that each get their own notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    Created,
    Activated,
    Renewed,
    Canceled,
    Resumed,
    Ended,
}

/// Event types with a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandledType {
    PortOutCredentialsIssued,
    UserUpdated,
    SubscriptionChangeApplied,
    Subscription(Lifecycle),
}

impl HandledType {
    /// Every handled type, in a stable order (used by `demo` and the docs).
    pub const ALL: [HandledType; 9] = [
        Self::PortOutCredentialsIssued,
        Self::UserUpdated,
        Self::SubscriptionChangeApplied,
        Self::Subscription(Lifecycle::Created),
        Self::Subscription(Lifecycle::Activated),
        Self::Subscription(Lifecycle::Renewed),
        Self::Subscription(Lifecycle::Canceled),
        Self::Subscription(Lifecycle::Resumed),
        Self::Subscription(Lifecycle::Ended),
    ];

    /// The full `com.gigs.…` type name.
    pub fn type_name(self) -> &'static str {
        match self {
            Self::PortOutCredentialsIssued => "com.gigs.portOutCredentials.issued",
            Self::UserUpdated => "com.gigs.user.updated",
            Self::SubscriptionChangeApplied => "com.gigs.subscriptionChange.applied",
            Self::Subscription(Lifecycle::Created) => "com.gigs.subscription.created",
            Self::Subscription(Lifecycle::Activated) => "com.gigs.subscription.activated",
            Self::Subscription(Lifecycle::Renewed) => "com.gigs.subscription.renewed",
            Self::Subscription(Lifecycle::Canceled) => "com.gigs.subscription.canceled",
            Self::Subscription(Lifecycle::Resumed) => "com.gigs.subscription.resumed",
            Self::Subscription(Lifecycle::Ended) => "com.gigs.subscription.ended",
        }
    }

    pub fn from_type_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_name() == name)
    }
}

/// A decoded handled event.
#[derive(Debug, Clone)]
pub enum TypedEvent {
    PortOutCredentialsIssued(PortOutCredentials),
    UserUpdated(UserUpdated),
    SubscriptionChangeApplied(SubscriptionChange),
    Subscription(Lifecycle, Subscription),
}

/// `portOutCredentials.issued` data. `accountNumber` and `accountPin` are deliberately not
/// decoded: they are secrets and no notice may carry them.
#[derive(Debug, Clone, Deserialize)]
pub struct PortOutCredentials {
    #[serde(deserialize_with = "id_or_object")]
    pub subscription: SubscriptionId,
}

/// `user.updated`: the user now, and which fields changed (`previousData`'s keys).
#[derive(Debug, Clone)]
pub struct UserUpdated {
    pub user: UserRef,
    /// Names of the fields that changed, as Gigs spells them (`fullName`, …).
    pub changed_fields: Vec<String>,
    /// The address before the change, when the email itself changed.
    pub previous_email: Option<EmailAddress>,
}

/// `subscriptionChange.applied` data.
#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionChange {
    #[serde(deserialize_with = "id_or_object")]
    pub subscription: SubscriptionId,
    #[serde(default, deserialize_with = "plan_name")]
    pub plan: Option<PlanName>,
}

/// `subscription.*` data (the subscription resource): only what the lifecycle notices use.
#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    pub id: SubscriptionId,
    #[serde(default, deserialize_with = "user_ref")]
    pub user: Option<UserRef>,
}

/// A user as embedded in a resource: its id and, if present and valid, its email.
#[derive(Debug, Clone, Deserialize)]
pub struct UserRef {
    pub id: UserId,
    #[serde(default, deserialize_with = "lenient_email")]
    pub email: Option<EmailAddress>,
}

fn lenient_email<'de, D: Deserializer<'de>>(d: D) -> Result<Option<EmailAddress>, D::Error> {
    let v: Option<Cow<'de, str>> = Option::deserialize(d)?;
    Ok(v.and_then(|s| EmailAddress::parse(&s).ok()))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdOrObject<T> {
    Id(T),
    Object { id: T },
}

fn id_or_object<'de, D: Deserializer<'de>>(d: D) -> Result<SubscriptionId, D::Error> {
    match IdOrObject::<SubscriptionId>::deserialize(d).map_err(|_| {
        serde::de::Error::custom("subscription must be a sub_… id or an object with one")
    })? {
        IdOrObject::Id(id) | IdOrObject::Object { id } => Ok(id),
    }
}

fn user_ref<'de, D: Deserializer<'de>>(d: D) -> Result<Option<UserRef>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Object(UserRef),
        Id(UserId),
    }
    Ok(
        match Option::<Wire>::deserialize(d)
            .map_err(|_| serde::de::Error::custom("user must be a usr_… id or a user object"))?
        {
            Some(Wire::Object(u)) => Some(u),
            Some(Wire::Id(id)) => Some(UserRef { id, email: None }),
            None => None,
        },
    )
}

fn plan_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PlanName>, D::Error> {
    // A plan may be embedded or just an id; only an embedded name is of use. Everything
    // else in it is skipped unread (a number too large for f64 there must not fail the
    // event), and a plan of an unexpected shape is no plan name rather than an error.
    struct PlanVisitor;
    impl<'de> serde::de::Visitor<'de> for PlanVisitor {
        type Value = Option<PlanName>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a plan object or id")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut name = None;
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                if key == "name" && name.is_none() {
                    name = map
                        .next_value::<Option<Cow<'de, str>>>()?
                        .and_then(|n| PlanName::new(&n));
                } else {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
            Ok(name)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(PlanVisitor)
        }
    }
    d.deserialize_option(PlanVisitor)
}

/// The envelope fields we read; everything else is kept raw until the worker decodes it.
#[derive(Deserialize)]
struct WireEnvelope<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(default, borrow)]
    time: Option<&'a RawValue>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
    #[serde(rename = "previousData", default, borrow)]
    previous_data: Option<&'a RawValue>,
}

impl<'a> WireEnvelope<'a> {
    fn parse(body: &'a [u8]) -> Result<Self, EnvelopeError> {
        let wire: WireEnvelope<'_> = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                EnvelopeError::NotEnvelope(describe(&e))
            } else {
                EnvelopeError::NotJson(describe(&e))
            }
        })?;
        if wire.event_type.is_empty() || wire.event_type.len() > 200 {
            return Err(EnvelopeError::NotEnvelope(
                "type must be a non-empty string".into(),
            ));
        }
        Ok(wire)
    }
}

/// A verified body's envelope: what the ingress needs to store (or ignore) it. The event's
/// `data` is not decoded here: a signed event is never refused for its data (a 400 would
/// make Gigs retry it for days and then disable the endpoint); the worker decodes it, and
/// what it cannot read goes to the dead letters.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub id: EventId,
    pub event_type: String,
    /// `None` for a type we do not handle.
    pub handled: Option<HandledType>,
}

impl Envelope {
    /// Parse a body's envelope: a JSON object with a valid `id` and a `type`.
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let wire = WireEnvelope::parse(body)?;
        let id = EventId::parse(&wire.id).map_err(|e| EnvelopeError::NotEnvelope(e.0))?;
        Ok(Self {
            id,
            handled: HandledType::from_type_name(&wire.event_type),
            event_type: wire.event_type.into_owned(),
        })
    }
}

/// A stored event of a handled type, decoded for its handler.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// When the change happened; `None` if the envelope had no `time`.
    pub time: Option<DateTime<Utc>>,
    pub event: TypedEvent,
}

impl Decoded {
    /// Decode a stored body; `Ok(None)` for a type without a handler. Only the fields a
    /// handler uses are read, so a field it does not use cannot fail the event.
    pub fn decode(body: &[u8]) -> Result<Option<Self>, EnvelopeError> {
        let wire = WireEnvelope::parse(body)?;
        let Some(kind) = HandledType::from_type_name(&wire.event_type) else {
            return Ok(None);
        };
        let invalid = |reason: String| EnvelopeError::InvalidData {
            event_type: wire.event_type.to_string(),
            reason,
        };
        let time = match wire.time.map(RawValue::get) {
            None | Some("null") => None,
            Some(raw) => Some(
                serde_json::from_str::<Cow<'_, str>>(raw)
                    .ok()
                    .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .ok_or_else(|| invalid("time is not an RFC 3339 timestamp".into()))?,
            ),
        };
        let data = wire
            .data
            .filter(|d| d.get().starts_with('{'))
            .ok_or_else(|| invalid("data must be an object".into()))?;
        let event = decode(kind, data, wire.previous_data).map_err(invalid)?;
        Ok(Some(Self { time, event }))
    }
}

fn decode(
    kind: HandledType,
    data: &RawValue,
    previous: Option<&RawValue>,
) -> Result<TypedEvent, String> {
    let json = data.get();
    let err = |e: serde_json::Error| describe(&e);
    Ok(match kind {
        HandledType::PortOutCredentialsIssued => {
            TypedEvent::PortOutCredentialsIssued(serde_json::from_str(json).map_err(err)?)
        }
        HandledType::SubscriptionChangeApplied => {
            TypedEvent::SubscriptionChangeApplied(serde_json::from_str(json).map_err(err)?)
        }
        HandledType::Subscription(step) => {
            TypedEvent::Subscription(step, serde_json::from_str(json).map_err(err)?)
        }
        HandledType::UserUpdated => {
            let user: UserRef = serde_json::from_str(json).map_err(err)?;
            // Without previousData nothing is known to have changed: no notice, no error.
            // Only its keys and a previous email are read, never other values.
            let mut changed_fields = Vec::new();
            let mut previous_email = None;
            match previous.map(RawValue::get) {
                None | Some("null") => {}
                Some(p) => {
                    let map: std::collections::BTreeMap<String, &RawValue> =
                        serde_json::from_str(p)
                            .map_err(|_| "previousData must be an object".to_string())?;
                    previous_email = map
                        .get("email")
                        .and_then(|v| serde_json::from_str::<Cow<'_, str>>(v.get()).ok())
                        .and_then(|s| EmailAddress::parse(&s).ok());
                    changed_fields = map.into_keys().collect();
                }
            }
            TypedEvent::UserUpdated(UserUpdated {
                user,
                changed_fields,
                previous_email,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATED: &str = include_str!("../tests/fixtures/subscription.created.json");

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
        let TypedEvent::SubscriptionChangeApplied(c) = d.event else {
            panic!()
        };
        assert_eq!(c.subscription.as_str(), "sub_1");
        assert!(c.plan.is_none());
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
        let TypedEvent::SubscriptionChangeApplied(c) = decoded(body).event else {
            panic!()
        };
        assert_eq!(c.plan.unwrap().as_str(), "Gigs Global");
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
}
