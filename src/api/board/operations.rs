//! The operations page's endpoints: what the API can know of the running system (the replicas'
//! own reports, the queues as RabbitMQ counts them, the outbox backlog, live leases and recent
//! expiries), the dead letters, and their replay by an operator.
//!
//! A replay is an operator's action: anyone else gets 403 `forbidden`. Once the broker confirmed
//! the replayed copy, it is recorded with the operator in `dead_letter_replays` (listed by the
//! operations page) and logged; the replayed message carries the operator in
//! `x-phaseflow-replayed-by`, and the worker applies it as any request (at most once, by its
//! message id).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::protocol::{Rejection, RejectionCode};

use super::super::auth::Agent;
use super::super::discovery::{parse, read_limit};
use super::super::error::{code, ApiError};
use super::super::request::{MessageIdPath, QueryParams};
use super::super::ApiState;
use super::views::{
    DeadLetterView, DeadLettersView, ExpiryView, LeasesView, OperationsView, OutboxView, QueueView,
    QueuesView, ReplayView, ReplayedView, ReplicaView,
};

/// The query parameter of `GET /api/v1/dead-letters`.
pub const DEAD_LETTER_PARAMETERS: [&str; 1] = ["limit"];
/// Dead letters listed when the request gives no `limit` (at most `api.dead_letter_limit`).
pub const DEFAULT_DEAD_LETTERS: usize = 50;

/// `GET /api/v1/operations`.
pub(super) async fn operations(State(state): State<ApiState>, _agent: Agent) -> Response {
    let (stored, queues) = tokio::join!(
        state.workflow.operations(state.retry),
        state.broker.queue_depths()
    );
    let stored = match stored {
        Ok(stored) => stored,
        Err(error) => return ApiError::from_workflow(&error).into_response(),
    };
    let queues = match queues {
        Ok((requests, dead_letter)) => QueuesView {
            reachable: true,
            error: None,
            requests: requests.as_ref().map(QueueView::from),
            dead_letter: dead_letter.as_ref().map(QueueView::from),
        },
        Err(error) => QueuesView {
            reachable: false,
            error: Some(format!("{error:#}")),
            requests: None,
            dead_letter: None,
        },
    };
    Json(OperationsView {
        replicas: stored
            .replicas
            .iter()
            .map(|replica| ReplicaView::new(replica, state.replica_report_interval))
            .collect(),
        queues,
        outbox: OutboxView {
            backlog: stored.outbox_backlog,
            oldest_age_seconds: stored.outbox_oldest_seconds,
        },
        leases: LeasesView {
            live: stored.live_leases,
            recent_expiries: stored
                .recent_expiries
                .iter()
                .map(ExpiryView::from)
                .collect(),
        },
        recent_replays: stored.recent_replays.iter().map(ReplayView::from).collect(),
    })
    .into_response()
}

fn broker_unavailable(error: &anyhow::Error) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        code::UNAVAILABLE,
        "RabbitMQ could not be asked",
    )
    .with_reasons(vec![format!("{error:#}")])
}

/// `GET /api/v1/dead-letters?limit=`: the oldest dead letters, left in the queue.
pub(super) async fn dead_letters(
    State(state): State<ApiState>,
    _agent: Agent,
    query: QueryParams,
) -> Response {
    let mut reasons = query.only(&DEAD_LETTER_PARAMETERS);
    let max = state.dead_letter_limit;
    let limit = parse(&query, "limit", &mut reasons, |text| read_limit(text, max))
        .unwrap_or(max.min(DEFAULT_DEAD_LETTERS));
    if !reasons.is_empty() {
        return ApiError::invalid(reasons).into_response();
    }
    // the depth first: while the listing holds the messages, RabbitMQ does not count them
    let listed = async {
        let (_, dead_letter) = state.broker.queue_depths().await?;
        let letters = state.broker.dead_letters(limit).await?;
        anyhow::Ok((letters, dead_letter))
    };
    match listed.await {
        Ok((letters, dead_letter)) => Json(DeadLettersView {
            dead_letters: letters.iter().map(DeadLetterView::from).collect(),
            total: dead_letter.map(|queue| queue.messages),
        })
        .into_response(),
        Err(error) => broker_unavailable(&error).into_response(),
    }
}

/// `POST /api/v1/dead-letters/{message_id}/replay`: operators only.
pub(super) async fn replay(
    State(state): State<ApiState>,
    agent: Agent,
    MessageIdPath(message_id): MessageIdPath,
) -> Response {
    let operator = agent.is_operator();
    let agent = agent.id;
    if !operator {
        return ApiError::rejected(&Rejection::new(
            RejectionCode::Forbidden,
            None,
            format!(
                "only an operator may replay a dead letter, and {agent} is not one (operators \
                 are named in auth.operators)"
            ),
        ))
        .into_response();
    }
    match state
        .broker
        .replay(&message_id, &agent, state.dead_letter_limit)
        .await
    {
        Ok(Some(replayed)) => {
            if let Err(error) = state
                .workflow
                .record_replay(
                    &replayed.message_id,
                    &replayed.routing_key,
                    replayed.reason.as_deref(),
                    &agent,
                    state.retry,
                )
                .await
            {
                tracing::error!(operator = %agent, message_id = %replayed.message_id, %error, "a dead letter was replayed, but the record of it could not be stored");
            }
            tracing::info!(
                operator = %agent,
                message_id = %replayed.message_id,
                routing_key = %replayed.routing_key,
                "dead letter replayed"
            );
            metrics::counter!("phaseflow_dead_letters_replayed_total").increment(1);
            Json(ReplayedView {
                message_id: replayed.message_id,
                routing_key: replayed.routing_key,
                replayed_by: agent,
            })
            .into_response()
        }
        Ok(None) => ApiError::new(
            StatusCode::NOT_FOUND,
            code::DEAD_LETTER_NOT_FOUND,
            "no such dead letter",
        )
        .with_reasons(vec![format!(
            "message_id: no message `{message_id}` among the first {} dead letters (replayed \
             already, or never dead-lettered)",
            state.dead_letter_limit
        )])
        .into_response(),
        Err(error) => broker_unavailable(&error).into_response(),
    }
}
