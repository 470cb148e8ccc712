//! `/admin/…`: dead letters and the notices' audit trail over HTTP, only when `ADMIN_TOKEN`
//! is set, behind a bearer check. Refusals are [`ApiError`]s, like every route's.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::config::Settings;
use crate::http_error::ApiError;
use crate::store::{now_ms, Store};
use crate::webhook::AppState;

/// The admin routes, or none when no token is configured.
pub fn router(state: AppState, settings: &Settings) -> Router {
    if settings.admin_token.is_none() {
        return Router::new();
    }
    let settings = Arc::new(settings.clone());
    Router::new()
        .route("/admin/dead-letters", get(list))
        .route("/admin/dead-letters/retry-all", post(retry_all))
        .route("/admin/dead-letters/{id}", get(show).delete(purge))
        .route("/admin/dead-letters/{id}/retry", post(retry))
        .route("/admin/notices", get(notices))
        .layer(middleware::from_fn_with_state(settings, require_token))
        .with_state(state.store)
}

async fn require_token(
    State(settings): State<Arc<Settings>>,
    req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(token) if settings.admin_token_matches(token) => next.run(req).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

fn no_such_dead_letter() -> ApiError {
    ApiError::NotFound("no dead letter has that id")
}

async fn list(State(store): State<Store>) -> Result<Response, ApiError> {
    match store.dead_letters().await {
        Ok(items) => Ok(Json(json!({ "items": items })).into_response()),
        Err(e) => Err(ApiError::StoreUnreachable(e)),
    }
}

async fn show(State(store): State<Store>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match crate::dead_letters::detail(&store, &id).await {
        Ok(Some(detail)) => Ok(Json(detail).into_response()),
        Ok(None) => Err(no_such_dead_letter()),
        Err(e) => Err(ApiError::StoreUnreachable(e)),
    }
}

async fn retry(State(store): State<Store>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match store.retry_dead_letter(&id, now_ms()).await {
        Ok(true) => Ok(Json(json!({ "status": "requeued", "id": id })).into_response()),
        Ok(false) => Err(no_such_dead_letter()),
        Err(e) => Err(ApiError::StoreUnreachable(e)),
    }
}

async fn purge(State(store): State<Store>, Path(id): Path<String>) -> Result<Response, ApiError> {
    match store.purge_dead_letter(&id).await {
        Ok(true) => Ok(Json(json!({ "status": "deleted", "id": id })).into_response()),
        Ok(false) => Err(no_such_dead_letter()),
        Err(e) => Err(ApiError::StoreUnreachable(e)),
    }
}

async fn retry_all(State(store): State<Store>) -> Result<Response, ApiError> {
    match crate::dead_letters::retry_all(&store, |_, _, _| {}).await {
        Ok((requeued, _)) => {
            Ok(Json(json!({ "status": "requeued", "count": requeued })).into_response())
        }
        Err(e) => Err(ApiError::StoreUnreachable(e)),
    }
}

/// Audit records, newest first. The address in `email` is only hashed and compared; it is
/// not logged (the request span logs the path, not the query).
async fn notices(
    State(store): State<Store>,
    query: Result<Query<crate::audit::NoticesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Ok(Query(q)) = query else {
        return Err(ApiError::UnreadableQuery);
    };
    let filter = match crate::audit::filter_from_query(q) {
        Ok(f) => f,
        Err((code, message)) => return Err(ApiError::BadQuery { code, message }),
    };
    match store.notice_audit(&filter).await {
        Ok(items) => Ok(Json(json!({ "items": items })).into_response()),
        Err(e) => Err(ApiError::StoreUnreachable(e)),
    }
}
