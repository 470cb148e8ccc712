//! Subscriptions: the lifecycle steps, and changes of plan or SIM (`subscriptionChange.*`).
//! A SIM change request is announced at once (FCC 23-95); a SIM swap is never worded as a
//! plan change.

use chrono::{DateTime, Utc};

use super::{enabled, owner, to_owner, Context, Delivery};
use crate::event::{ChangeStep, Lifecycle, Subscription, SubscriptionChange};
use crate::notice::Notice;
use crate::outbound::CallError;

pub async fn change(
    step: ChangeStep,
    data: &SubscriptionChange,
    at: DateTime<Utc>,
    ctx: &Context<'_>,
) -> Result<Vec<Delivery>, CallError> {
    let sim = data.sim.map(|s| s.kind);
    let notice = match step {
        ChangeStep::Created => sim.map(|sim| Notice::sim_change_requested(at, sim)),
        ChangeStep::Applied => {
            Notice::subscription_changed(at, sim, data.plan.as_ref().map(|p| p.name.clone()))
        }
        // Only a SIM change that did not happen is worth a word: a failed plan change
        // leaves the plan as the customer knows it.
        ChangeStep::Failed | ChangeStep::Canceled => {
            sim.map(|_| Notice::sim_change_not_completed(at))
        }
    };
    match notice {
        Some(notice) => to_owner(ctx, &data.subscription, notice).await,
        None => Ok(Vec::new()),
    }
}

/// The embedded user is used when it carries an address; otherwise the Core API is asked.
pub async fn lifecycle(
    step: Lifecycle,
    data: &Subscription,
    at: DateTime<Utc>,
    ctx: &Context<'_>,
) -> Result<Vec<Delivery>, CallError> {
    let notice = Notice::subscription(step, at);
    if !enabled(ctx, notice.kind()) {
        return Ok(Vec::new());
    }
    let embedded = data
        .user
        .as_ref()
        .and_then(|u| u.email.clone().map(|e| (e, u.id.clone(), u.locale.clone())));
    let (to, user, line, locale) = match embedded {
        Some((to, user, locale)) => (to, user, data.line.clone(), locale),
        None => {
            let o = owner(ctx, &data.id).await?;
            (o.to, o.user, data.line.clone().or(o.line), o.locale)
        }
    };
    Ok(vec![Delivery {
        to,
        role: "owner",
        notice: notice.on_line(line),
        user: Some(user),
        subscription: Some(data.id.clone()),
        locale,
    }])
}
