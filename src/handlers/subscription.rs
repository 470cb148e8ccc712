//! `subscriptionChange.applied` and the `subscription.*` lifecycle steps.

use chrono::{DateTime, Utc};

use super::{owner_address, to_owner, Context, Delivery};
use crate::event::{Lifecycle, Subscription, SubscriptionChange};
use crate::notice::Notice;
use crate::outbound::CallError;

pub async fn change_applied(
    data: &SubscriptionChange,
    at: DateTime<Utc>,
    ctx: &Context<'_>,
) -> Result<Vec<Delivery>, CallError> {
    to_owner(
        ctx,
        &data.subscription,
        Notice::plan_changed(at, data.plan.clone()),
    )
    .await
}

/// The embedded user is used when it carries an address; otherwise the Core API is asked.
pub async fn lifecycle(
    step: Lifecycle,
    data: &Subscription,
    at: DateTime<Utc>,
    ctx: &Context<'_>,
) -> Result<Vec<Delivery>, CallError> {
    let embedded = data.user.as_ref().and_then(|u| u.email.clone());
    let to = match embedded {
        Some(address) => address,
        None => owner_address(ctx, &data.id).await?,
    };
    Ok(vec![Delivery {
        to,
        role: "owner",
        notice: Notice::subscription(step, at),
    }])
}
