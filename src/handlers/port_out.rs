//! Port-outs: credentials issued (`portOutCredentials.issued`) and the number leaving for
//! another carrier (`portOut.*`). FCC 23-95 asks for a notice the moment a port-out is
//! requested: it is how a number hijack is caught.

use chrono::{DateTime, Utc};

use super::{enabled, to_owner, Context, Delivery};
use crate::event::{PortOut, PortOutBehavior, PortOutCredentials, PortOutStep};
use crate::notice::{Notice, NoticeKind};
use crate::outbound::CallError;

pub async fn credentials(
    data: &PortOutCredentials,
    at: DateTime<Utc>,
    ctx: &Context<'_>,
) -> Result<Vec<Delivery>, CallError> {
    let notice = Notice::port_out_credentials_issued(at, data.expires_at);
    to_owner(ctx, &data.subscription, notice).await
}

/// The recipient is the port-out's user (`GET /users/{id}`); the line, when the port-out
/// names its subscription, comes from that subscription.
pub async fn step(
    step: PortOutStep,
    data: &PortOut,
    at: DateTime<Utc>,
    ctx: &Context<'_>,
) -> Result<Vec<Delivery>, CallError> {
    let kind = match step {
        PortOutStep::Created => NoticeKind::PortOutRequested,
        PortOutStep::Completed => NoticeKind::PortOutCompleted,
        PortOutStep::Expired | PortOutStep::Failed => NoticeKind::PortOutNotCompleted,
    };
    if !enabled(ctx, kind) {
        return Ok(Vec::new());
    }
    let user = ctx.gigs.user(&data.user).await?;
    let to = user
        .email
        .ok_or_else(|| CallError::permanent("the port-out's user has no usable email address"))?;
    let line = match &data.subscription {
        // A line that cannot be named (the subscription is gone) does not stop the notice.
        Some(sub) => match ctx.gigs.subscription(sub).await {
            Ok(s) => s.line,
            Err(e) if e.is_retryable() => return Err(e),
            Err(_) => None,
        },
        None => None,
    };
    let cancel_only = data.behavior == PortOutBehavior::CancelOnly;
    Ok(vec![Delivery {
        to,
        role: "owner",
        notice: Notice::port_out(kind, at, cancel_only).on_line(line),
        user: Some(user.id),
        subscription: data.subscription.clone(),
        locale: user.locale,
    }])
}
