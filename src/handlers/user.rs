//! Users: account information (`user.updated`) and the address of record
//! (`user.address.*`). 47 CFR 64.2010(f): tell the customer without revealing the new value,
//! and never at the new contact details, so an email change is told to the previous
//! address only. Users still onboarding (no subscription yet) are skipped.

use chrono::{DateTime, Utc};

use super::{enabled, Context, Delivery};
use crate::event::{AddressStep, UserAddress, UserUpdated};
use crate::notice::{InfoKind, Notice, NoticeKind};
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
    if changed.is_empty() || !ctx.gigs.user_has_subscription(&data.user.id).await? {
        return Ok(Vec::new());
    }
    let current = data.user.email.clone();
    // Addresses compare case-insensitively: a change of case is not a new mailbox.
    let replaced = changed.contains(&InfoKind::EmailAddress)
        && !matches!((&data.previous_email, &current),
            (Some(p), Some(c)) if p.expose().eq_ignore_ascii_case(c.expose()));
    let (to, role, notice) = if replaced {
        let Some(previous) = data.previous_email.clone() else {
            // Nobody to tell but the new address, which the rule forbids: an operator decides.
            return Err(CallError::permanent(
                "the email changed but the previous address is unknown; the new one may not be told",
            ));
        };
        (
            previous,
            "previous_address",
            Notice::email_address_replaced(at, changed),
        )
    } else {
        let to =
            current.ok_or_else(|| CallError::permanent("the user has no usable email address"))?;
        (
            to,
            "account",
            Notice::account_information_changed(at, changed),
        )
    };
    if !enabled(ctx, notice.kind()) {
        return Ok(Vec::new());
    }
    Ok(vec![Delivery {
        to,
        role,
        notice,
        user: Some(data.user.id.clone()),
        subscription: None,
        locale: data.user.locale.clone(),
    }])
}

pub async fn address(
    step: AddressStep,
    data: &UserAddress,
    at: DateTime<Utc>,
    ctx: &Context<'_>,
) -> Result<Vec<Delivery>, CallError> {
    let kind = match step {
        AddressStep::Created => NoticeKind::AddressAdded,
        AddressStep::Deleted => NoticeKind::AddressRemoved,
    };
    if !enabled(ctx, kind) || !ctx.gigs.user_has_subscription(&data.user).await? {
        return Ok(Vec::new());
    }
    let user = ctx.gigs.user(&data.user).await?;
    let to = user
        .email
        .ok_or_else(|| CallError::permanent("the user has no usable email address"))?;
    Ok(vec![Delivery {
        to,
        role: "account",
        notice: Notice::address(kind, at),
        user: Some(user.id),
        subscription: None,
        locale: user.locale,
    }])
}
