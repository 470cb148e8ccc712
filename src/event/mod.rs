//! The CloudEvents-shaped envelope Gigs sends, the event types we handle, and decoding a
//! stored event for its handler (the typed data itself is in [`data`]).
//!
//! The ingress reads only the envelope (`id`, `type`); the worker decodes the rest. Unknown
//! fields are ignored and optional fields may be missing, because Gigs adds fields without a
//! version change.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

mod data;

pub use data::{
    PlanRef, PortOut, PortOutBehavior, PortOutCredentials, SimKind, SimRef, Subscription,
    SubscriptionChange, UserAddress, UserRef, UserUpdated,
};

use crate::domain::{EmailAddress, EventId};

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

/// `subscriptionChange.*` steps with a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeStep {
    /// Requested (a SIM change request is the moment to warn).
    Created,
    Applied,
    Failed,
    Canceled,
}

/// `portOut.*` steps with a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortOutStep {
    Created,
    Completed,
    Expired,
    Failed,
}

/// `user.address.*` steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressStep {
    Created,
    Deleted,
}

/// Event types with a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandledType {
    PortOutCredentialsIssued,
    UserUpdated,
    SubscriptionChange(ChangeStep),
    Subscription(Lifecycle),
    PortOut(PortOutStep),
    UserAddress(AddressStep),
}

impl HandledType {
    /// Every handled type, in a stable order (used by `demo` and the docs).
    pub const ALL: [HandledType; 18] = [
        Self::PortOutCredentialsIssued,
        Self::UserUpdated,
        Self::SubscriptionChange(ChangeStep::Created),
        Self::SubscriptionChange(ChangeStep::Applied),
        Self::SubscriptionChange(ChangeStep::Failed),
        Self::SubscriptionChange(ChangeStep::Canceled),
        Self::Subscription(Lifecycle::Created),
        Self::Subscription(Lifecycle::Activated),
        Self::Subscription(Lifecycle::Renewed),
        Self::Subscription(Lifecycle::Canceled),
        Self::Subscription(Lifecycle::Resumed),
        Self::Subscription(Lifecycle::Ended),
        Self::PortOut(PortOutStep::Created),
        Self::PortOut(PortOutStep::Completed),
        Self::PortOut(PortOutStep::Expired),
        Self::PortOut(PortOutStep::Failed),
        Self::UserAddress(AddressStep::Created),
        Self::UserAddress(AddressStep::Deleted),
    ];

    /// The full `com.gigs.…` type name.
    pub fn type_name(self) -> &'static str {
        use {AddressStep as A, ChangeStep as C, Lifecycle as L, PortOutStep as P};
        match self {
            Self::PortOutCredentialsIssued => "com.gigs.portOutCredentials.issued",
            Self::UserUpdated => "com.gigs.user.updated",
            Self::SubscriptionChange(C::Created) => "com.gigs.subscriptionChange.created",
            Self::SubscriptionChange(C::Applied) => "com.gigs.subscriptionChange.applied",
            Self::SubscriptionChange(C::Failed) => "com.gigs.subscriptionChange.failed",
            Self::SubscriptionChange(C::Canceled) => "com.gigs.subscriptionChange.canceled",
            Self::Subscription(L::Created) => "com.gigs.subscription.created",
            Self::Subscription(L::Activated) => "com.gigs.subscription.activated",
            Self::Subscription(L::Renewed) => "com.gigs.subscription.renewed",
            Self::Subscription(L::Canceled) => "com.gigs.subscription.canceled",
            Self::Subscription(L::Resumed) => "com.gigs.subscription.resumed",
            Self::Subscription(L::Ended) => "com.gigs.subscription.ended",
            Self::PortOut(P::Created) => "com.gigs.portOut.created",
            Self::PortOut(P::Completed) => "com.gigs.portOut.completed",
            Self::PortOut(P::Expired) => "com.gigs.portOut.expired",
            Self::PortOut(P::Failed) => "com.gigs.portOut.failed",
            Self::UserAddress(A::Created) => "com.gigs.user.address.created",
            Self::UserAddress(A::Deleted) => "com.gigs.user.address.deleted",
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
    SubscriptionChange(ChangeStep, SubscriptionChange),
    Subscription(Lifecycle, Subscription),
    PortOut(PortOutStep, PortOut),
    UserAddress(AddressStep, UserAddress),
}

/// Who caused a change (`actor.type`), as a kind: never the actor's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorKind {
    /// The customer themself (`user`).
    Customer,
    /// Customer support (`member`).
    Support,
    /// The operator's own systems (`apiKey`).
    OperatorSystems,
    /// The platform (`system`).
    Platform,
}

impl ActorKind {
    fn from_wire(raw: &RawValue) -> Option<Self> {
        #[derive(Deserialize)]
        struct Wire<'a> {
            #[serde(rename = "type", borrow)]
            kind: Cow<'a, str>,
        }
        let wire: Wire<'_> = serde_json::from_str(raw.get()).ok()?;
        match wire.kind.as_ref() {
            "user" => Some(Self::Customer),
            "member" => Some(Self::Support),
            "apiKey" => Some(Self::OperatorSystems),
            "system" => Some(Self::Platform),
            _ => None,
        }
    }
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
    #[serde(default, borrow)]
    actor: Option<&'a RawValue>,
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
    /// Who caused it, when the event says (and in a form we know).
    pub actor: Option<ActorKind>,
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
        // Only adds a detail to a notice: unreadable means unknown, not an error.
        let actor = wire.actor.and_then(ActorKind::from_wire);
        Ok(Some(Self { time, actor, event }))
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
        HandledType::SubscriptionChange(step) => {
            TypedEvent::SubscriptionChange(step, serde_json::from_str(json).map_err(err)?)
        }
        HandledType::PortOut(step) => {
            TypedEvent::PortOut(step, serde_json::from_str(json).map_err(err)?)
        }
        HandledType::UserAddress(step) => {
            TypedEvent::UserAddress(step, serde_json::from_str(json).map_err(err)?)
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
mod tests;
