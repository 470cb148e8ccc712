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

/// `subscription.*` data (the subscription resource).
#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    pub id: SubscriptionId,
    #[serde(default, deserialize_with = "user_ref")]
    pub user: Option<UserRef>,
    #[serde(default, deserialize_with = "plan_name")]
    pub plan: Option<PlanName>,
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
    // A plan may be embedded or just an id; only an embedded name is of use.
    let v: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(v.as_ref()
        .and_then(|v| v.get("name"))
        .and_then(|n| n.as_str())
        .and_then(PlanName::new))
}

/// The envelope fields we read; `data` is kept raw until we know the type.
#[derive(Deserialize)]
struct WireEnvelope<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(default, borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(rename = "previousData", default, borrow)]
    previous_data: Option<&'a RawValue>,
}

/// A verified body, parsed.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub id: EventId,
    pub event_type: String,
    /// When the change happened; `None` if the envelope had no usable `time`.
    pub time: Option<DateTime<Utc>>,
    /// `None` for a type we do not handle.
    pub event: Option<TypedEvent>,
}

impl Envelope {
    /// Parse a body: the envelope must be valid, and the data of a handled type must decode.
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let wire: WireEnvelope<'_> = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                EnvelopeError::NotEnvelope(describe(&e))
            } else {
                EnvelopeError::NotJson(describe(&e))
            }
        })?;
        let id = EventId::parse(&wire.id).map_err(|e| EnvelopeError::NotEnvelope(e.0))?;
        if wire.event_type.is_empty() || wire.event_type.len() > 200 {
            return Err(EnvelopeError::NotEnvelope(
                "type must be a non-empty string".into(),
            ));
        }
        if !wire.data.get().starts_with('{') {
            return Err(EnvelopeError::NotEnvelope("data must be an object".into()));
        }
        let time = wire
            .time
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let event = match HandledType::from_type_name(&wire.event_type) {
            None => None,
            Some(kind) => Some(decode(kind, wire.data, wire.previous_data).map_err(|e| {
                EnvelopeError::InvalidData {
                    event_type: wire.event_type.to_string(),
                    reason: e,
                }
            })?),
        };
        Ok(Self {
            id,
            event_type: wire.event_type.into_owned(),
            time,
            event,
        })
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
            // Without previousData nothing is known to have changed: no notice, no error
            // (a 400 would only make Gigs retry the same body for days).
            let map: serde_json::Map<String, serde_json::Value> = match previous {
                None => serde_json::Map::new(),
                Some(p) if p.get() == "null" => serde_json::Map::new(),
                Some(p) => serde_json::from_str(p.get())
                    .map_err(|_| "previousData must be an object".to_string())?,
            };
            let previous_email = map
                .get("email")
                .and_then(|v| v.as_str())
                .and_then(|s| EmailAddress::parse(s).ok());
            TypedEvent::UserUpdated(UserUpdated {
                user,
                changed_fields: map.into_iter().map(|(k, _)| k).collect(),
                previous_email,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATED: &str = include_str!("../tests/fixtures/subscription.created.json");

    #[test]
    fn parses_the_published_subscription_created_example() {
        let env = Envelope::parse(CREATED.as_bytes()).unwrap();
        assert_eq!(env.event_type, "com.gigs.subscription.created");
        let Some(TypedEvent::Subscription(Lifecycle::Created, sub)) = env.event else {
            panic!("wrong type");
        };
        let user = sub.user.unwrap();
        assert_eq!(user.id.as_str(), "usr_0SNlurA049MEWV4OpCwsNyC9Kn2d");
        assert!(user.email.is_some());
        assert_eq!(sub.plan.unwrap().as_str(), "Gigs Global");
    }

    #[test]
    fn tolerates_fractional_time_missing_optionals_and_unknown_fields() {
        let body = br#"{"id":"evt_1","type":"com.gigs.subscriptionChange.applied","time":"2024-03-10T15:27:46.123456Z",
            "brandNew":{"x":1},"data":{"subscription":"sub_1","plan":"pln_1","extra":true}}"#;
        let env = Envelope::parse(body).unwrap();
        assert!(env.time.is_some());
        let Some(TypedEvent::SubscriptionChangeApplied(c)) = env.event else {
            panic!()
        };
        assert_eq!(c.subscription.as_str(), "sub_1");
        assert!(c.plan.is_none());
    }

    #[test]
    fn unhandled_types_parse_without_data_decoding() {
        let env = Envelope::parse(br#"{"id":"evt_2","type":"com.gigs.sim.activated","data":{}}"#)
            .unwrap();
        assert!(env.event.is_none());
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
        assert_eq!(
            Envelope::parse(br#"{"id":"evt_3","type":"com.gigs.user.updated","data":"x"}"#)
                .unwrap_err()
                .code(),
            "invalid_envelope"
        );
        let e = Envelope::parse(
            br#"{"id":"evt_4","type":"com.gigs.portOutCredentials.issued","data":{"subscription":"jerry@example.com"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.code(), "invalid_event_data");
        assert!(!e.to_string().contains("jerry"), "{e}");
        let e = Envelope::parse(
            br#"{"id":"evt_5","type":"com.gigs.user.updated","data":{"id":12345678},"previousData":{}}"#,
        )
        .unwrap_err();
        assert!(!e.to_string().contains("12345678"), "{e}");
    }

    #[test]
    fn user_updated_lists_changed_fields_and_previous_email() {
        let body = br#"{"id":"evt_6","type":"com.gigs.user.updated","data":{"id":"usr_1","email":"new@example.com","fullName":"X"},
            "previousData":{"email":"old@example.com","fullName":"Y"}}"#;
        let Some(TypedEvent::UserUpdated(u)) = Envelope::parse(body).unwrap().event else {
            panic!()
        };
        assert_eq!(u.changed_fields, ["email", "fullName"]);
        assert_eq!(u.previous_email.unwrap().expose(), "old@example.com");
        assert_eq!(u.user.email.unwrap().expose(), "new@example.com");
    }
}
