//! `portOutCredentials.issued`: tell the subscription's owner; it may be a hijack attempt.

use chrono::{DateTime, Utc};

use super::{to_owner, Context, Delivery};
use crate::event::PortOutCredentials;
use crate::notice::Notice;
use crate::outbound::CallError;

pub async fn issued(
    data: &PortOutCredentials,
    at: DateTime<Utc>,
    ctx: &Context<'_>,
) -> Result<Vec<Delivery>, CallError> {
    to_owner(
        ctx,
        &data.subscription,
        Notice::port_out_credentials_issued(at),
    )
    .await
}
