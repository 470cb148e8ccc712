//! `user.updated`: only notice-worthy fields, only users who have a subscription, and the
//! previous address too when the email itself changed (how account takeovers are caught).

use chrono::{DateTime, Utc};

use super::{Context, Delivery};
use crate::event::UserUpdated;
use crate::notice::{InfoKind, Notice};
use crate::outbound::CallError;

pub async fn updated(
    data: &UserUpdated,
    at: DateTime<Utc>,
    ctx: &Context<'_>,
) -> Result<Vec<Delivery>, CallError> {
    let changed: Vec<InfoKind> = data
        .changed_fields
        .iter()
        .filter(|f| ctx.notice_fields.iter().any(|n| n == *f))
        .map(|f| InfoKind::from_field(f))
        .collect();
    if changed.is_empty() {
        return Ok(Vec::new());
    }
    // Users still onboarding (no subscription yet) change their details often; skip them.
    if !ctx.gigs.user_has_subscription(&data.user.id).await? {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(2);
    let current = data.user.email.clone();
    if let Some(to) = current.clone() {
        out.push(Delivery {
            to,
            role: "account",
            notice: Notice::account_information_changed(at, changed.clone()),
        });
    }
    if changed.contains(&InfoKind::EmailAddress) {
        if let Some(previous) = data
            .previous_email
            .clone()
            .filter(|p| Some(p) != current.as_ref())
        {
            out.push(Delivery {
                to: previous,
                role: "previous_address",
                notice: Notice::email_address_replaced(at),
            });
        }
    }
    if out.is_empty() {
        return Err(CallError::permanent("the user has no usable email address"));
    }
    Ok(out)
}
