//! The words of every notice (English). Built only from a [`Notice`]'s allow-listed
//! fields, so nothing personal can reach a subject or a body.

use super::{InfoKind, Notice, NoticeKind};
use crate::event::{ActorKind, Lifecycle, SimKind};

const NOT_YOU: &str = "If you do not recognise this, contact support right away.";
const TAKEOVER: &str = "If you did not ask for this, contact support right away: someone may \
                        be trying to take over your phone number.";

pub(super) fn subject(n: &Notice) -> String {
    use NoticeKind as K;
    let cancel = n.cancel_only;
    match n.kind {
        K::PortOutCredentialsIssued => "Port-out credentials were issued for your number",
        K::AccountInformationChanged => "Your account information was changed",
        K::EmailAddressReplaced => "The email address on your account was changed",
        K::PlanChanged => "Your plan was changed",
        K::SimChanged => "The SIM for your line was changed",
        K::SimAndPlanChanged => "The SIM and the plan for your line were changed",
        K::SimChangeRequested => "A SIM change was requested on your line",
        K::SimChangeNotCompleted => "The requested SIM change did not happen",
        K::PortOutRequested if cancel => "A request to cancel your service was made",
        K::PortOutRequested => "A request to move your number to another provider was made",
        K::PortOutCompleted if cancel => "Your service was canceled",
        K::PortOutCompleted => "Your number was moved to another provider",
        K::PortOutNotCompleted if cancel => "The request to cancel your service did not go through",
        K::PortOutNotCompleted => "The request to move your number did not go through",
        K::AddressAdded => "An address was added to your account",
        K::AddressRemoved => "An address was removed from your account",
        K::Subscription(Lifecycle::Created) => "Your subscription was created",
        K::Subscription(Lifecycle::Activated) => "Your subscription is now active",
        K::Subscription(Lifecycle::Renewed) => "Your subscription was renewed",
        K::Subscription(Lifecycle::Canceled) => "Your subscription was canceled",
        K::Subscription(Lifecycle::Resumed) => "Your subscription was resumed",
        K::Subscription(Lifecycle::Ended) => "Your subscription has ended",
    }
    .to_string()
}

pub(super) fn content(n: &Notice) -> String {
    use NoticeKind as K;
    let when = n.occurred_at.format("%Y-%m-%d %H:%M UTC");
    // "your line ending in 4567" where the line is known.
    let line = match &n.line {
        Some(l) => format!("your line ending in {}", l.as_str()),
        None => "your line".to_string(),
    };
    let number = match &n.line {
        Some(l) => format!("your phone number ending in {}", l.as_str()),
        None => "your phone number".to_string(),
    };
    let sim = sim_words(n.sim);
    let plan = match &n.plan {
        Some(p) => format!("the plan \"{}\"", p.as_str()),
        None => "a new plan".to_string(),
    };
    let body = match n.kind {
        K::PortOutCredentialsIssued => {
            let expiry = match n.expires_at {
                Some(t) => format!(" They expire on {}.", t.format("%Y-%m-%d %H:%M UTC")),
                None => String::new(),
            };
            format!(
                "Port-out credentials for {number} were issued on {when}. They allow your \
                 number to be moved to another provider.{expiry} {TAKEOVER}"
            )
        }
        K::AccountInformationChanged => format!(
            "The following information on your account was changed on {when}: {}. {NOT_YOU}",
            join_labels(&n.changed)
        ),
        K::EmailAddressReplaced => format!(
            "The following information on your account was changed on {when}: {}. Account \
             notices now go to the new email address, so this address will no longer receive \
             them. {NOT_YOU}",
            join_labels(&n.changed)
        ),
        K::PlanChanged => match &n.plan {
            Some(p) => format!(
                "A change of the plan for {line} to \"{}\" was applied on {when}. {NOT_YOU}",
                p.as_str()
            ),
            None => format!("A change of the plan for {line} was applied on {when}. {NOT_YOU}"),
        },
        K::SimChanged => format!(
            "The SIM for {line} was replaced with {sim} on {when}. Your previous SIM no longer \
             works. {TAKEOVER}"
        ),
        K::SimAndPlanChanged => format!(
            "The SIM for {line} was replaced with {sim}, and {line} moved to {plan}, on {when}. \
             Your previous SIM no longer works. {TAKEOVER}"
        ),
        K::SimChangeRequested => {
            format!("A change of the SIM for {line} to {sim} was requested on {when}. {TAKEOVER}")
        }
        K::SimChangeNotCompleted => format!(
            "The SIM change requested for {line} did not happen ({when}). Your current SIM \
             keeps working. If you did not ask for a SIM change, contact support."
        ),
        K::PortOutRequested if n.cancel_only => format!(
            "A request to cancel the service on {line} was made on {when}. The service will \
             be canceled without moving the number to another provider. {TAKEOVER}"
        ),
        K::PortOutRequested => {
            format!("A request to move {number} to another provider was made on {when}. {TAKEOVER}")
        }
        K::PortOutCompleted if n.cancel_only => {
            format!("The service on {line} was canceled on {when}. {NOT_YOU}")
        }
        K::PortOutCompleted => format!(
            "{} was moved to another provider on {when}, and its service with us has ended. \
             {NOT_YOU}",
            capitalize(&number)
        ),
        K::PortOutNotCompleted => format!(
            "The request concerning {line} did not go through ({when}). Your service \
             continues as before. If you did not make this request, contact support."
        ),
        K::AddressAdded => format!("An address was added to your account on {when}. {NOT_YOU}"),
        K::AddressRemoved => {
            format!("An address was removed from your account on {when}. {NOT_YOU}")
        }
        K::Subscription(step) => {
            let what = match step {
                Lifecycle::Created => "Your subscription was created",
                Lifecycle::Activated => "Your subscription was activated and is ready to use",
                Lifecycle::Renewed => "Your subscription was renewed for a new period",
                Lifecycle::Canceled => "Your subscription was canceled",
                Lifecycle::Resumed => "Your subscription was resumed and is no longer canceled",
                Lifecycle::Ended => "Your subscription ended",
            };
            let on = match &n.line {
                Some(l) => format!(" (line ending in {})", l.as_str()),
                None => String::new(),
            };
            format!("{what}{on} on {when}. {NOT_YOU}")
        }
    };
    match actor_words(n.actor) {
        Some(by) => format!("{body} {by}"),
        None => body,
    }
}

fn sim_words(sim: Option<SimKind>) -> &'static str {
    match sim {
        Some(SimKind::ESim) => "an eSIM",
        Some(SimKind::PhysicalSim) => "a physical SIM card",
        Some(SimKind::Unknown) | None => "a new SIM",
    }
}

fn actor_words(actor: Option<ActorKind>) -> Option<&'static str> {
    Some(match actor? {
        ActorKind::Customer => "The change was made from your account.",
        ActorKind::Support => "The change was made by customer support.",
        ActorKind::OperatorSystems => "The change was made through our systems.",
        ActorKind::Platform => "The change was made automatically by our platform.",
    })
}

fn label(kind: InfoKind) -> &'static str {
    match kind {
        InfoKind::EmailAddress => "email address",
        InfoKind::FullName => "name",
        InfoKind::Birthday => "date of birth",
        InfoKind::PreferredLanguage => "preferred language",
        InfoKind::EmailVerification => "email verification status",
        InfoKind::OtherAccountDetails => "other account details",
    }
}

fn join_labels(kinds: &[InfoKind]) -> String {
    let labels: Vec<&str> = kinds.iter().map(|k| label(*k)).collect();
    match labels.as_slice() {
        [] => "account details".to_string(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
