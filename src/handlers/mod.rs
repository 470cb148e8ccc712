//! One handler per event family: each turns a typed event into the notices it calls for,
//! with their recipients. Recipients come from the event when it embeds the user, otherwise
//! from the Core API.

mod port_out;
mod subscription;
mod user;

use chrono::{DateTime, Utc};

use crate::domain::{EmailAddress, LastFour, SubscriptionId, UserId};
use crate::event::{Decoded, TypedEvent};
use crate::gigs::GigsClient;
use crate::notice::locale::LocaleTag;
use crate::notice::{Notice, NoticeKind};
use crate::outbound::CallError;

/// Whom a notice goes to and why; `role` keeps two notices of one event apart in the
/// idempotency key. The ids are kept for the notice's audit record.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub to: EmailAddress,
    pub role: &'static str,
    pub notice: Notice,
    pub user: Option<UserId>,
    pub subscription: Option<SubscriptionId>,
    /// The recipient's `preferredLocale`, from the event's user or the Core API's.
    pub locale: Option<LocaleTag>,
}

/// What handlers may use.
pub struct Context<'a> {
    pub gigs: &'a GigsClient,
    /// `user.updated` fields worth a notice.
    pub notice_fields: &'a [String],
    /// Kinds the operator switched off (`NOTICE_KINDS_DISABLED`).
    pub disabled: &'a [NoticeKind],
}

/// The notices an event calls for (possibly none).
pub async fn deliveries(
    decoded: &Decoded,
    at: DateTime<Utc>,
    ctx: &Context<'_>,
) -> Result<Vec<Delivery>, CallError> {
    let out = match &decoded.event {
        TypedEvent::PortOutCredentialsIssued(data) => port_out::credentials(data, at, ctx).await?,
        TypedEvent::PortOut(step, data) => port_out::step(*step, data, at, ctx).await?,
        TypedEvent::UserUpdated(data) => user::updated(data, at, ctx).await?,
        TypedEvent::UserAddress(step, data) => user::address(*step, data, at, ctx).await?,
        TypedEvent::SubscriptionChange(step, data) => {
            subscription::change(*step, data, at, ctx).await?
        }
        TypedEvent::Subscription(step, data) => {
            subscription::lifecycle(*step, data, at, ctx).await?
        }
    };
    Ok(out
        .into_iter()
        .map(|mut d| {
            d.notice = d.notice.by(decoded.actor);
            d
        })
        .collect())
}

/// Whether the operator switched `kind` off: then the handler makes no look-up for it.
fn enabled(ctx: &Context<'_>, kind: NoticeKind) -> bool {
    !ctx.disabled.contains(&kind)
}

/// The owner of a subscription (through the Core API): address, id, line and language.
struct Owner {
    to: EmailAddress,
    user: UserId,
    line: Option<LastFour>,
    locale: Option<LocaleTag>,
}

async fn owner(ctx: &Context<'_>, subscription: &SubscriptionId) -> Result<Owner, CallError> {
    let sub = ctx.gigs.subscription(subscription).await?;
    let user = sub
        .user
        .ok_or_else(|| CallError::permanent("Core API subscription has no user"))?;
    let to = user.email.ok_or_else(|| {
        CallError::permanent("the subscription's user has no usable email address")
    })?;
    Ok(Owner {
        to,
        user: user.id,
        line: sub.line,
        locale: user.locale,
    })
}

/// One notice to the owner of a subscription, naming the line.
async fn to_owner(
    ctx: &Context<'_>,
    subscription: &SubscriptionId,
    notice: Notice,
) -> Result<Vec<Delivery>, CallError> {
    if !enabled(ctx, notice.kind()) {
        return Ok(Vec::new());
    }
    let owner = owner(ctx, subscription).await?;
    Ok(vec![Delivery {
        to: owner.to,
        role: "owner",
        notice: notice.on_line(owner.line),
        user: Some(owner.user),
        subscription: Some(subscription.clone()),
        locale: owner.locale,
    }])
}
