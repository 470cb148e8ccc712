//! Notices: what a customer is told. Mail text is made only by the operator's templates
//! ([`templates`]), from a context built only from a [`Notice`] ([`context`]).
//!
//! Redaction by construction: a [`Notice`] holds a kind, a timestamp, the *kinds* of
//! information that changed (a closed enum), at most a plan name, the kind of SIM, the
//! line's last four digits, who made the change (as a kind) and when credentials expire.
//! None of its fields can hold a name, an address, a birthday, a PIN, an account number, an
//! ICCID or an activation code, so no template can leak one.
//!
//! Rooms: [`locale`] (tags and the fallback order), [`context`] (the variables a template
//! sees, per kind), [`templates`] (loading and rendering a set), [`check`] (what a set must
//! pass before it is used), [`samples`] (notices to check and preview with), [`render`]
//! (a notice into its stored text, at creation).

pub mod check;
pub mod context;
pub mod locale;
pub mod render;
pub mod samples;
pub mod templates;

pub use render::{NoticeSettings, Rendered, Renderer};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::domain::{LastFour, PlanName};
use crate::event::{ActorKind, Lifecycle, SimKind};

/// What happened, one subject line each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    PortOutCredentialsIssued,
    AccountInformationChanged,
    /// Sent to the address an account used before its email changed, never to the new one.
    EmailAddressReplaced,
    PlanChanged,
    SimChanged,
    SimAndPlanChanged,
    SimChangeRequested,
    SimChangeNotCompleted,
    PortOutRequested,
    PortOutCompleted,
    PortOutNotCompleted,
    AddressAdded,
    AddressRemoved,
    Subscription(Lifecycle),
}

impl NoticeKind {
    /// Every kind, in a stable order.
    pub const ALL: [NoticeKind; 19] = [
        Self::PortOutCredentialsIssued,
        Self::AccountInformationChanged,
        Self::EmailAddressReplaced,
        Self::PlanChanged,
        Self::SimChanged,
        Self::SimAndPlanChanged,
        Self::SimChangeRequested,
        Self::SimChangeNotCompleted,
        Self::PortOutRequested,
        Self::PortOutCompleted,
        Self::PortOutNotCompleted,
        Self::AddressAdded,
        Self::AddressRemoved,
        Self::Subscription(Lifecycle::Created),
        Self::Subscription(Lifecycle::Activated),
        Self::Subscription(Lifecycle::Renewed),
        Self::Subscription(Lifecycle::Canceled),
        Self::Subscription(Lifecycle::Resumed),
        Self::Subscription(Lifecycle::Ended),
    ];

    /// Stable code: part of the idempotency key, a metrics label, a setting value.
    pub fn code(self) -> &'static str {
        match self {
            Self::PortOutCredentialsIssued => "port_out_credentials_issued",
            Self::AccountInformationChanged => "account_information_changed",
            Self::EmailAddressReplaced => "email_address_replaced",
            Self::PlanChanged => "plan_changed",
            Self::SimChanged => "sim_changed",
            Self::SimAndPlanChanged => "sim_and_plan_changed",
            Self::SimChangeRequested => "sim_change_requested",
            Self::SimChangeNotCompleted => "sim_change_not_completed",
            Self::PortOutRequested => "port_out_requested",
            Self::PortOutCompleted => "port_out_completed",
            Self::PortOutNotCompleted => "port_out_not_completed",
            Self::AddressAdded => "address_added",
            Self::AddressRemoved => "address_removed",
            Self::Subscription(Lifecycle::Created) => "subscription_created",
            Self::Subscription(Lifecycle::Activated) => "subscription_activated",
            Self::Subscription(Lifecycle::Renewed) => "subscription_renewed",
            Self::Subscription(Lifecycle::Canceled) => "subscription_canceled",
            Self::Subscription(Lifecycle::Resumed) => "subscription_resumed",
            Self::Subscription(Lifecycle::Ended) => "subscription_ended",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The US rule that requires this notice, if one does (operators are warned before
    /// switching such a kind off).
    pub fn required_by(self) -> Option<&'static str> {
        match self {
            Self::SimChangeRequested | Self::SimChanged | Self::SimAndPlanChanged => {
                Some("FCC 23-95 (SIM change notification)")
            }
            Self::PortOutRequested => Some("FCC 23-95 (port-out notification)"),
            Self::AccountInformationChanged
            | Self::EmailAddressReplaced
            | Self::AddressAdded
            | Self::AddressRemoved => {
                Some("47 CFR 64.2010(f) (account and address-of-record changes)")
            }
            _ => None,
        }
    }
}

/// A kind of account information (never its value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InfoKind {
    EmailAddress,
    FullName,
    Birthday,
    PreferredLanguage,
    EmailVerification,
    /// A configured field we have no specific words for.
    OtherAccountDetails,
}

impl InfoKind {
    /// Map a Gigs user field name (`fullName`) to its kind.
    pub fn from_field(field: &str) -> Self {
        match field {
            "email" => Self::EmailAddress,
            "fullName" => Self::FullName,
            "birthday" => Self::Birthday,
            "preferredLocale" => Self::PreferredLanguage,
            "emailVerified" => Self::EmailVerification,
            _ => Self::OtherAccountDetails,
        }
    }
}

/// A notice, ready to render. Fields are private: build one with the constructors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    kind: NoticeKind,
    occurred_at: DateTime<Utc>,
    changed: Vec<InfoKind>,
    plan: Option<PlanName>,
    sim: Option<SimKind>,
    line: Option<LastFour>,
    actor: Option<ActorKind>,
    expires_at: Option<DateTime<Utc>>,
    /// A port-out that cancels service without moving the number.
    cancel_only: bool,
}

impl Notice {
    fn new(kind: NoticeKind, occurred_at: DateTime<Utc>) -> Self {
        Self {
            kind,
            occurred_at,
            changed: Vec::new(),
            plan: None,
            sim: None,
            line: None,
            actor: None,
            expires_at: None,
            cancel_only: false,
        }
    }

    pub fn port_out_credentials_issued(
        at: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            expires_at,
            ..Self::new(NoticeKind::PortOutCredentialsIssued, at)
        }
    }

    /// `changed` is sorted and deduplicated, so the text is stable across retries.
    pub fn account_information_changed(at: DateTime<Utc>, changed: Vec<InfoKind>) -> Self {
        Self::new(NoticeKind::AccountInformationChanged, at).with_changed(changed)
    }

    /// To the previous address after an email change: every kind the event changed.
    pub fn email_address_replaced(at: DateTime<Utc>, changed: Vec<InfoKind>) -> Self {
        Self::new(NoticeKind::EmailAddressReplaced, at).with_changed(changed)
    }

    /// What a subscription change did: `None` when it changed neither SIM nor plan.
    pub fn subscription_changed(
        at: DateTime<Utc>,
        sim: Option<SimKind>,
        plan: Option<Option<PlanName>>,
    ) -> Option<Self> {
        let kind = match (sim, &plan) {
            (Some(_), Some(_)) => NoticeKind::SimAndPlanChanged,
            (Some(_), None) => NoticeKind::SimChanged,
            (None, Some(_)) => NoticeKind::PlanChanged,
            (None, None) => return None,
        };
        Some(Self {
            sim,
            plan: plan.flatten(),
            ..Self::new(kind, at)
        })
    }

    pub fn sim_change_requested(at: DateTime<Utc>, sim: SimKind) -> Self {
        Self {
            sim: Some(sim),
            ..Self::new(NoticeKind::SimChangeRequested, at)
        }
    }

    pub fn sim_change_not_completed(at: DateTime<Utc>) -> Self {
        Self::new(NoticeKind::SimChangeNotCompleted, at)
    }

    /// A port-out step; `cancel_only` when the service ends without the number moving.
    pub fn port_out(kind: NoticeKind, at: DateTime<Utc>, cancel_only: bool) -> Self {
        Self {
            cancel_only,
            ..Self::new(kind, at)
        }
    }

    pub fn address(kind: NoticeKind, at: DateTime<Utc>) -> Self {
        Self::new(kind, at)
    }

    pub fn subscription(step: Lifecycle, at: DateTime<Utc>) -> Self {
        Self::new(NoticeKind::Subscription(step), at)
    }

    /// Name the line by its last four digits.
    pub fn on_line(mut self, line: Option<LastFour>) -> Self {
        self.line = line;
        self
    }

    /// Say who made the change.
    pub fn by(mut self, actor: Option<ActorKind>) -> Self {
        self.actor = actor;
        self
    }

    fn with_changed(mut self, mut changed: Vec<InfoKind>) -> Self {
        changed.sort();
        changed.dedup();
        self.changed = changed;
        self
    }

    pub fn kind(&self) -> NoticeKind {
        self.kind
    }
}

/// A brand name as notices may show it: no control characters, at most 100 characters,
/// `None` when nothing is left.
pub fn brand_name(text: &str) -> Option<String> {
    let clean: String = text.chars().filter(|c| !c.is_control()).take(100).collect();
    let clean = clean.trim();
    (!clean.is_empty()).then(|| clean.to_string())
}

/// The idempotency key of a notice: stable for (event, notice kind, recipient role), so a
/// reprocessed event yields the same key and the store's dedup keeps one row.
pub fn notice_id(event_id: &str, kind: &str, role: &str) -> String {
    let digest = Sha256::digest(format!("{event_id}\n{kind}\n{role}").as_bytes());
    format!("ntc_{}", &hex::encode(digest)[..32])
}

#[cfg(test)]
mod tests;
