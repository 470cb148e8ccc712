//! Validated value types. Ids go into Core API URL paths, so they are checked for their
//! prefix and a safe alphabet; an email address redacts itself in `Debug`.

use serde::{Deserialize, Deserializer};

/// Why a value was refused (the value itself is never repeated).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

fn id_chars_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            #[doc = concat!("Accepts `", $prefix, "…` made of letters, digits, `_` and `-`.")]
            pub fn parse(s: &str) -> Result<Self, InvalidValue> {
                if s.starts_with($prefix) && s.len() > $prefix.len() && id_chars_ok(s) {
                    Ok(Self(s.to_string()))
                } else {
                    Err(InvalidValue(format!(
                        concat!($what, " must look like ", $prefix, "…")
                    )))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

prefixed_id!(
    /// A Gigs subscription id (`sub_…`).
    SubscriptionId,
    "sub_",
    "subscription id"
);
prefixed_id!(
    /// A Gigs user id (`usr_…`).
    UserId,
    "usr_",
    "user id"
);

/// A Gigs event id: the dedup key of the inbox. Gigs uses `evt_…`; any short id of a safe
/// alphabet is accepted so fixtures from other tools still replay.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventId(String);

impl EventId {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if id_chars_ok(s) {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidValue(
                "event id must be 1-128 letters, digits, '_' or '-'".to_string(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A recipient address. Personal data: `Debug` is redacted and there is no `Display`, so it
/// can only leave through [`EmailAddress::expose`], which the mail client and the store use.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let s = s.trim();
        let ok = s.len() <= 254
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(s.split_once('@'), Some((local, domain))
                if !local.is_empty() && domain.contains('.') && !domain.contains('@')
                    && !domain.starts_with('.') && !domain.ends_with('.'));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidValue("email address is not valid".to_string()))
        }
    }

    /// The address itself, for the mail request.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `je***@example.com`: enough for an operator to tell recipients apart.
    pub fn masked(&self) -> String {
        mask_email(&self.0)
    }
}

/// Mask the local part of an address (also used for stored values shown to operators).
pub fn mask_email(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let keep: String = local
                .chars()
                .take(2.min(local.chars().count() / 2))
                .collect();
            format!("{keep}***@{domain}")
        }
        None => "***".to_string(),
    }
}

impl std::fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmailAddress(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A plan's display name: allowed in notices (it describes the product, not the person).
/// Control characters are dropped and the length is bounded, so it cannot smuggle markup
/// or a wall of text into a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanName(String);

impl PlanName {
    pub fn new(s: &str) -> Option<Self> {
        let clean: String = s.chars().filter(|c| !c.is_control()).take(80).collect();
        let clean = clean.trim().to_string();
        (!clean.is_empty()).then_some(Self(clean))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The last four digits of a phone number: how a notice names the line (the redaction
/// contract allows this much and no more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastFour(String);

impl LastFour {
    /// The last four digits of `phone`, if it has at least four.
    pub fn of(phone: &str) -> Option<Self> {
        let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
        (digits.len() >= 4).then(|| Self(digits[digits.len() - 4..].iter().collect()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_need_their_prefix_and_a_safe_alphabet() {
        assert!(SubscriptionId::parse("sub_0SNlurA049MEWV2gSfSxi00xlPIi").is_ok());
        assert!(SubscriptionId::parse("usr_0SNlurA049MEWV4OpCwsNyC9Kn2d").is_err());
        assert!(SubscriptionId::parse("sub_").is_err());
        assert!(SubscriptionId::parse("sub_../../users").is_err());
        assert!(UserId::parse("usr_abc").is_ok());
        assert!(EventId::parse("evt_0SNlurA049MEWV5gNTcQ5A07h3Ol").is_ok());
        assert!(EventId::parse("").is_err());
        assert!(EventId::parse("evt 1").is_err());
    }

    #[test]
    fn email_is_validated_and_redacted() {
        let e = EmailAddress::parse("jerry@example.com").unwrap();
        assert_eq!(format!("{e:?}"), "EmailAddress(<redacted>)");
        assert_eq!(e.masked(), "je***@example.com");
        assert_eq!(mask_email("a@b.io"), "***@b.io");
        for bad in [
            "",
            "jerry",
            "@example.com",
            "jerry@example",
            "a b@c.d",
            "a@b@c.d",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_line_is_named_by_its_last_four_digits_only() {
        assert_eq!(LastFour::of("+1 (959) 123-4567").unwrap().as_str(), "4567");
        assert!(LastFour::of("+12").is_none());
        assert!(LastFour::of("").is_none());
    }

    #[test]
    fn plan_names_are_cleaned() {
        assert_eq!(
            PlanName::new(" Gigs\u{0007} Global ").unwrap().as_str(),
            "Gigs Global"
        );
        assert!(PlanName::new("\n").is_none());
        assert_eq!(PlanName::new(&"x".repeat(500)).unwrap().as_str().len(), 80);
    }
}
