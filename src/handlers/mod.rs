//! One handler per event family: each turns a typed event into the notices it calls for,
//! with their recipients. Recipients come from the event when it embeds the user, otherwise
//! from the Core API.

mod port_out;
mod subscription;
mod user;

use chrono::{DateTime, Utc};

use crate::domain::{EmailAddress, SubscriptionId};
use crate::event::TypedEvent;
use crate::gigs::GigsClient;
use crate::notice::Notice;
use crate::outbound::CallError;

/// Whom a notice goes to and why; `role` keeps two notices of one event apart in the
/// idempotency key (the current and the previous address after an email change).
#[derive(Debug, Clone)]
pub struct Delivery {
    pub to: EmailAddress,
    pub role: &'static str,
    pub notice: Notice,
}

/// What handlers may use.
pub struct Context<'a> {
    pub gigs: &'a GigsClient,
    /// `user.updated` fields worth a notice.
    pub notice_fields: &'a [String],
}

/// The notices an event calls for (possibly none).
pub async fn deliveries(
    event: &TypedEvent,
    at: DateTime<Utc>,
    ctx: &Context<'_>,
) -> Result<Vec<Delivery>, CallError> {
    match event {
        TypedEvent::PortOutCredentialsIssued(data) => port_out::issued(data, at, ctx).await,
        TypedEvent::UserUpdated(data) => user::updated(data, at, ctx).await,
        TypedEvent::SubscriptionChangeApplied(data) => {
            subscription::change_applied(data, at, ctx).await
        }
        TypedEvent::Subscription(step, data) => subscription::lifecycle(*step, data, at, ctx).await,
    }
}

/// One notice to the owner of a subscription.
async fn to_owner(
    ctx: &Context<'_>,
    subscription: &SubscriptionId,
    notice: Notice,
) -> Result<Vec<Delivery>, CallError> {
    Ok(vec![Delivery {
        to: owner_address(ctx, subscription).await?,
        role: "owner",
        notice,
    }])
}

/// The address of the user who owns a subscription, through the Core API.
async fn owner_address(
    ctx: &Context<'_>,
    subscription: &SubscriptionId,
) -> Result<EmailAddress, CallError> {
    ctx.gigs
        .subscription_user(subscription)
        .await?
        .email
        .ok_or_else(|| CallError::permanent("the subscription's user has no usable email address"))
}
