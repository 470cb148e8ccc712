//! The typed `data` of the events we handle: only the fields a notice needs. Everything else
//! (names, PINs, account numbers, addresses, ICCIDs, …) is skipped unread by serde and never
//! held in a typed value; a field of an unexpected shape that no handler uses cannot fail an
//! event.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::domain::{EmailAddress, LastFour, PlanName, SubscriptionId, UserId};
use crate::notice::locale::LocaleTag;

/// `portOutCredentials.issued` data. `accountNumber` and `accountPin` are deliberately not
/// decoded: they are secrets and no notice may carry them.
#[derive(Debug, Clone, Deserialize)]
pub struct PortOutCredentials {
    #[serde(deserialize_with = "id_or_object")]
    pub subscription: SubscriptionId,
    /// When the credentials stop working (told to the customer).
    #[serde(rename = "expiresAt", default, deserialize_with = "lenient_time")]
    pub expires_at: Option<DateTime<Utc>>,
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

/// `subscriptionChange.*` data: a plan change, a SIM change, or both.
#[derive(Debug, Clone, Deserialize)]
pub struct SubscriptionChange {
    #[serde(deserialize_with = "id_or_object")]
    pub subscription: SubscriptionId,
    /// `Some` when the change carries a plan (its name, if embedded).
    #[serde(default)]
    pub plan: Option<PlanRef>,
    /// `Some` when the change replaces the SIM.
    #[serde(default)]
    pub sim: Option<SimRef>,
}

/// A plan in an event: present, and its display name when embedded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRef {
    pub name: Option<PlanName>,
}

/// Which kind of SIM a change puts in place (never its ICCID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SimKind {
    ESim,
    PhysicalSim,
    Unknown,
}

/// A SIM in an event: only its type is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimRef {
    pub kind: SimKind,
}

/// `subscription.*` data (the subscription resource): only what the lifecycle notices use.
#[derive(Debug, Clone, Deserialize)]
pub struct Subscription {
    pub id: SubscriptionId,
    #[serde(default, deserialize_with = "user_ref")]
    pub user: Option<UserRef>,
    /// The line, by its last four digits.
    #[serde(rename = "phoneNumber", default, deserialize_with = "last_four")]
    pub line: Option<LastFour>,
}

/// What a port-out does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum PortOutBehavior {
    /// The number moves to another provider.
    #[default]
    #[serde(rename = "portOut")]
    PortOut,
    /// Service is canceled without moving the number (UK local plans).
    #[serde(rename = "cancelOnly")]
    CancelOnly,
}

/// `portOut.*` data (the PortOut resource).
#[derive(Debug, Clone, Deserialize)]
pub struct PortOut {
    #[serde(deserialize_with = "id_or_object_user")]
    pub user: UserId,
    #[serde(default, deserialize_with = "optional_subscription")]
    pub subscription: Option<SubscriptionId>,
    #[serde(default, deserialize_with = "lenient_behavior")]
    pub behavior: PortOutBehavior,
}

/// `user.address.*` data: whose address it is (never any part of it).
#[derive(Debug, Clone, Deserialize)]
pub struct UserAddress {
    #[serde(deserialize_with = "id_or_object_user")]
    pub user: UserId,
}

/// A user as embedded in a resource: its id and, if present and valid, its email and the
/// language it reads notices in.
#[derive(Debug, Clone, Deserialize)]
pub struct UserRef {
    pub id: UserId,
    #[serde(default, deserialize_with = "lenient_email")]
    pub email: Option<EmailAddress>,
    #[serde(
        rename = "preferredLocale",
        default,
        deserialize_with = "lenient_locale"
    )]
    pub locale: Option<LocaleTag>,
}

fn lenient_locale<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LocaleTag>, D::Error> {
    let v = Option::<Cow<'de, str>>::deserialize(d).unwrap_or(None);
    Ok(v.and_then(|s| LocaleTag::parse(&s)))
}

fn lenient_email<'de, D: Deserializer<'de>>(d: D) -> Result<Option<EmailAddress>, D::Error> {
    let v: Option<Cow<'de, str>> = Option::deserialize(d)?;
    Ok(v.and_then(|s| EmailAddress::parse(&s).ok()))
}

/// A time that, when unreadable, is simply not known (it only adds a detail to a notice).
fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let v = Option::<Cow<'de, str>>::deserialize(d).unwrap_or(None);
    Ok(v.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc)))
}

fn last_four<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LastFour>, D::Error> {
    let v = Option::<Cow<'de, str>>::deserialize(d).unwrap_or(None);
    Ok(v.and_then(|p| LastFour::of(&p)))
}

fn lenient_behavior<'de, D: Deserializer<'de>>(d: D) -> Result<PortOutBehavior, D::Error> {
    Ok(Option::<PortOutBehavior>::deserialize(d)
        .unwrap_or(None)
        .unwrap_or_default())
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

fn optional_subscription<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SubscriptionId>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "id_or_object")] SubscriptionId);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

fn id_or_object_user<'de, D: Deserializer<'de>>(d: D) -> Result<UserId, D::Error> {
    match IdOrObject::<UserId>::deserialize(d)
        .map_err(|_| serde::de::Error::custom("user must be a usr_… id or an object with one"))?
    {
        IdOrObject::Id(id) | IdOrObject::Object { id } => Ok(id),
    }
}

pub(super) fn user_ref<'de, D: Deserializer<'de>>(d: D) -> Result<Option<UserRef>, D::Error> {
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
            Some(Wire::Id(id)) => Some(UserRef {
                id,
                email: None,
                locale: None,
            }),
            None => None,
        },
    )
}

/// Reads one string field of an object (or nothing, for any other shape), skipping every
/// other field unread: a number too large for f64 elsewhere must not fail the event.
struct OneField {
    name: &'static str,
}

impl<'de> Visitor<'de> for OneField {
    type Value = Option<String>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object or an id")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut value = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == self.name && value.is_none() {
                value = map
                    .next_value::<Option<Cow<'de, str>>>()?
                    .map(Cow::into_owned);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(value)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
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
}

impl<'de> Deserialize<'de> for PlanRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A plan may be embedded or just an id; only an embedded name is of use.
        let name = d.deserialize_any(OneField { name: "name" })?;
        Ok(Self {
            name: name.as_deref().and_then(PlanName::new),
        })
    }
}

impl<'de> Deserialize<'de> for SimRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let kind = match d.deserialize_any(OneField { name: "type" })?.as_deref() {
            Some("eSIM") => SimKind::ESim,
            Some("pSIM") => SimKind::PhysicalSim,
            _ => SimKind::Unknown,
        };
        Ok(Self { kind })
    }
}
