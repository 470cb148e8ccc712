//! Notices and their templates: the only place mail text is made.
//!
//! Redaction by construction: a [`Notice`] holds a kind, a timestamp, the *kinds* of
//! information that changed (a closed enum) and at most a plan name. None of its fields can
//! hold a name, an address, a birthday, a PIN, an account number, an ICCID or an activation
//! code, so no template can leak one.

use chrono::{DateTime, Utc};

use crate::domain::PlanName;
use crate::event::Lifecycle;

/// What happened, one subject line each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    PortOutCredentialsIssued,
    AccountInformationChanged,
    /// Sent to the address an account used before its email changed.
    EmailAddressReplaced,
    PlanChanged,
    Subscription(Lifecycle),
}

impl NoticeKind {
    /// Stable code: part of the idempotency key and a metrics label.
    pub fn code(self) -> &'static str {
        match self {
            Self::PortOutCredentialsIssued => "port_out_credentials_issued",
            Self::AccountInformationChanged => "account_information_changed",
            Self::EmailAddressReplaced => "email_address_replaced",
            Self::PlanChanged => "plan_changed",
            Self::Subscription(Lifecycle::Created) => "subscription_created",
            Self::Subscription(Lifecycle::Activated) => "subscription_activated",
            Self::Subscription(Lifecycle::Renewed) => "subscription_renewed",
            Self::Subscription(Lifecycle::Canceled) => "subscription_canceled",
            Self::Subscription(Lifecycle::Resumed) => "subscription_resumed",
            Self::Subscription(Lifecycle::Ended) => "subscription_ended",
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

    fn label(self) -> &'static str {
        match self {
            Self::EmailAddress => "email address",
            Self::FullName => "name",
            Self::Birthday => "date of birth",
            Self::PreferredLanguage => "preferred language",
            Self::EmailVerification => "email verification status",
            Self::OtherAccountDetails => "other account details",
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
}

impl Notice {
    pub fn port_out_credentials_issued(at: DateTime<Utc>) -> Self {
        Self::new(NoticeKind::PortOutCredentialsIssued, at)
    }

    /// `changed` is sorted and deduplicated, so the text is stable across retries.
    pub fn account_information_changed(at: DateTime<Utc>, mut changed: Vec<InfoKind>) -> Self {
        changed.sort();
        changed.dedup();
        Self {
            changed,
            ..Self::new(NoticeKind::AccountInformationChanged, at)
        }
    }

    pub fn email_address_replaced(at: DateTime<Utc>) -> Self {
        Self::new(NoticeKind::EmailAddressReplaced, at)
    }

    pub fn plan_changed(at: DateTime<Utc>, plan: Option<PlanName>) -> Self {
        Self {
            plan,
            ..Self::new(NoticeKind::PlanChanged, at)
        }
    }

    pub fn subscription(step: Lifecycle, at: DateTime<Utc>) -> Self {
        Self::new(NoticeKind::Subscription(step), at)
    }

    fn new(kind: NoticeKind, occurred_at: DateTime<Utc>) -> Self {
        Self {
            kind,
            occurred_at,
            changed: Vec::new(),
            plan: None,
        }
    }

    pub fn kind(&self) -> NoticeKind {
        self.kind
    }

    pub fn subject(&self) -> String {
        match self.kind {
            NoticeKind::PortOutCredentialsIssued => {
                "Port-out credentials were issued for your number"
            }
            NoticeKind::AccountInformationChanged => "Your account information was changed",
            NoticeKind::EmailAddressReplaced => "The email address on your account was changed",
            NoticeKind::PlanChanged => "Your plan was changed",
            NoticeKind::Subscription(Lifecycle::Created) => "Your subscription was created",
            NoticeKind::Subscription(Lifecycle::Activated) => "Your subscription is now active",
            NoticeKind::Subscription(Lifecycle::Renewed) => "Your subscription was renewed",
            NoticeKind::Subscription(Lifecycle::Canceled) => "Your subscription was canceled",
            NoticeKind::Subscription(Lifecycle::Resumed) => "Your subscription was resumed",
            NoticeKind::Subscription(Lifecycle::Ended) => "Your subscription has ended",
        }
        .to_string()
    }

    pub fn content(&self) -> String {
        let when = self.occurred_at.format("%Y-%m-%d %H:%M UTC");
        const NOT_YOU: &str = "If you do not recognise this, contact support right away.";
        match self.kind {
            NoticeKind::PortOutCredentialsIssued => format!(
                "Port-out credentials for your phone number were issued on {when}. \
                 They allow your number to be moved to another provider. \
                 If this wasn't you, contact support right away."
            ),
            NoticeKind::AccountInformationChanged => {
                let what = join_labels(&self.changed);
                format!("The following information on your account was changed on {when}: {what}. {NOT_YOU}")
            }
            NoticeKind::EmailAddressReplaced => format!(
                "The email address on your account was changed on {when}, so this address \
                 will no longer receive account notices. {NOT_YOU}"
            ),
            NoticeKind::PlanChanged => match &self.plan {
                Some(plan) => format!(
                    "A change of your plan to \"{}\" was applied on {when}. {NOT_YOU}",
                    plan.as_str()
                ),
                None => format!("A change of your plan was applied on {when}. {NOT_YOU}"),
            },
            NoticeKind::Subscription(step) => {
                let what = match step {
                    Lifecycle::Created => "Your subscription was created",
                    Lifecycle::Activated => "Your subscription was activated and is ready to use",
                    Lifecycle::Renewed => "Your subscription was renewed for a new period",
                    Lifecycle::Canceled => "Your subscription was canceled",
                    Lifecycle::Resumed => "Your subscription was resumed and is no longer canceled",
                    Lifecycle::Ended => "Your subscription ended",
                };
                format!("{what} on {when}. {NOT_YOU}")
            }
        }
    }
}

fn join_labels(kinds: &[InfoKind]) -> String {
    let labels: Vec<&str> = kinds.iter().map(|k| k.label()).collect();
    match labels.as_slice() {
        [] => "account details".to_string(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::HandledType;

    fn at() -> DateTime<Utc> {
        "2024-03-10T15:27:46Z".parse().unwrap()
    }

    fn all_notices() -> Vec<Notice> {
        let mut v = vec![
            Notice::port_out_credentials_issued(at()),
            Notice::account_information_changed(
                at(),
                vec![InfoKind::FullName, InfoKind::EmailAddress],
            ),
            Notice::email_address_replaced(at()),
            Notice::plan_changed(at(), PlanName::new("Gigs Global")),
            Notice::plan_changed(at(), None),
        ];
        for t in HandledType::ALL {
            if let HandledType::Subscription(step) = t {
                v.push(Notice::subscription(step, at()));
            }
        }
        v
    }

    #[test]
    fn every_kind_has_its_own_subject() {
        let notices = all_notices();
        let mut subjects: Vec<_> = notices
            .iter()
            .filter(|n| !(n.kind == NoticeKind::PlanChanged && n.plan.is_none()))
            .map(|n| n.subject())
            .collect();
        let total = subjects.len();
        subjects.sort();
        subjects.dedup();
        assert_eq!(subjects.len(), total);
    }

    #[test]
    fn content_says_what_and_when() {
        let n = Notice::account_information_changed(
            at(),
            vec![
                InfoKind::FullName,
                InfoKind::EmailAddress,
                InfoKind::FullName,
            ],
        );
        assert_eq!(
            n.content(),
            "The following information on your account was changed on 2024-03-10 15:27 UTC: \
             email address and name. If you do not recognise this, contact support right away."
        );
        for n in all_notices() {
            assert!(
                n.content().contains("2024-03-10 15:27 UTC"),
                "{}",
                n.content()
            );
        }
    }

    #[test]
    fn plan_name_is_the_only_free_text() {
        let n = Notice::plan_changed(at(), PlanName::new("Unlimited 5G"));
        assert!(n.content().contains("\"Unlimited 5G\""));
    }
}
