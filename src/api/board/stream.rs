//! `GET /api/v1/stream`: the events phaseflow publishes, as server-sent events, for the board's
//! live updates (and any client that wants to watch without a RabbitMQ account).
//!
//! Each event published to the events exchange reaches every stream (or, with `?ticket_id=`,
//! the streams of its ticket) as `event: cloudevent` with the CloudEvent as `data`, within the
//! time the relay takes to publish it. A stream that may have missed events (the API's feed
//! reconnected to RabbitMQ, or the client read more slowly than `api.stream_buffer` events
//! arrived) gets `event: resync`: reload what you show. An idle stream gets a comment line every
//! `api.stream_keepalive_ms`. Streams end when the API shuts down, and a stream opened with a
//! registered agent's token ends as soon as that token is revoked (`api::revocations`).
//! Authenticated like every endpoint: a browser reads it with `fetch` and the `Authorization`
//! header, never with the token in the URL.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_lite::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::domain::TicketId;
use crate::messaging::feed::FeedItem;
use crate::workflow::Workflow;

use super::super::auth::Agent;
use super::super::discovery::parse;
use super::super::error::{code, ApiError};
use super::super::request::QueryParams;
use super::super::revocations::{Revoked, RECHECK_INTERVAL};
use super::super::ApiState;

/// The query parameter of `GET /api/v1/stream`.
pub const STREAM_PARAMETERS: [&str; 1] = ["ticket_id"];

pub(super) async fn stream(
    State(state): State<ApiState>,
    agent: Agent,
    query: QueryParams,
) -> Response {
    let mut reasons = query.only(&STREAM_PARAMETERS);
    let ticket = parse(&query, "ticket_id", &mut reasons, |text| {
        uuid::Uuid::parse_str(text)
            .map(TicketId)
            .map_err(|_| format!("`{text}` is not a UUID"))
    });
    if !reasons.is_empty() {
        return ApiError::invalid(reasons).into_response();
    }
    let Some(feed) = state.feed.clone() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            "this API process serves no live stream",
        )
        .into_response();
    };
    let first = (!feed.connected()).then_some(FeedItem::Resync(
        "the live feed is not connected to RabbitMQ yet: events may be missing until it is",
    ));
    // a stream opened with an issued token is watched by a task of its own, which a stream
    // that is being written to cannot interrupt; the watcher ends with the stream
    let revoked = CancellationToken::new();
    let watching = CancellationToken::new();
    if let Some(token) = agent.issued_token.clone() {
        let revocable = Revocable {
            agent: Arc::from(agent.id.as_str()),
            token,
            revocations: state.revocations.subscribe(),
            workflow: state.workflow.clone(),
            recheck: tokio::time::interval_at(
                tokio::time::Instant::now() + RECHECK_INTERVAL,
                RECHECK_INTERVAL,
            ),
        };
        tokio::spawn(watch(revocable, revoked.clone(), watching.clone()));
    }
    let items = Items {
        receiver: feed.subscribe(),
        pending: first,
        ticket: ticket.map(|ticket| Arc::<str>::from(ticket.to_string())),
        stop: state.stop.clone(),
        revoked,
        _watching: watching.drop_guard(),
    };
    metrics::gauge!("phaseflow_live_streams").increment(1.0);
    Sse::new(events(items))
        .keep_alive(KeepAlive::new().interval(state.stream_keepalive))
        .into_response()
}

/// What one stream reads from.
struct Items {
    receiver: tokio::sync::broadcast::Receiver<FeedItem>,
    /// an item to send before the next one received
    pending: Option<FeedItem>,
    /// only this ticket's events
    ticket: Option<Arc<str>>,
    stop: CancellationToken,
    /// cancelled when the issued token the stream was opened with is revoked (never, for a
    /// configured token)
    revoked: CancellationToken,
    /// ends the token's watcher when the stream ends
    _watching: DropGuard,
}

/// A stream's issued token, and what tells it that the token may have been revoked.
struct Revocable {
    agent: Arc<str>,
    token: Vec<u8>,
    revocations: tokio::sync::broadcast::Receiver<Revoked>,
    workflow: Workflow,
    recheck: tokio::time::Interval,
}

impl Revocable {
    /// Waits until the token may have been revoked.
    async fn concerned(&mut self) {
        loop {
            tokio::select! {
                notice = self.revocations.recv() => match notice {
                    Ok(Revoked::Agent(agent)) if agent != self.agent => {}
                    Ok(_) | Err(RecvError::Lagged(_)) => return,
                    Err(RecvError::Closed) => std::future::pending::<()>().await,
                },
                _ = self.recheck.tick() => return,
            }
        }
    }

    /// Whether the token is still live; a database that cannot be asked keeps the stream.
    async fn live(&self) -> bool {
        match self.workflow.token_is_live(&self.token).await {
            Ok(live) => live,
            Err(error) => {
                tracing::debug!(%error, "cannot check a live stream's token; it stays open");
                true
            }
        }
    }
}

/// Watches a stream's token until the stream ends (`watching`), cancelling `revoked` when the
/// token is revoked.
async fn watch(mut revocable: Revocable, revoked: CancellationToken, watching: CancellationToken) {
    let agent = revocable.agent.clone();
    let until_revoked = async {
        loop {
            revocable.concerned().await;
            if !revocable.live().await {
                return;
            }
        }
    };
    tokio::select! {
        () = until_revoked => {
            tracing::info!(%agent, "a live stream's token was revoked; the stream ends");
            revoked.cancel();
        }
        () = watching.cancelled() => {}
    }
}

impl Drop for Items {
    fn drop(&mut self) {
        metrics::gauge!("phaseflow_live_streams").decrement(1.0);
    }
}

fn events(items: Items) -> impl Stream<Item = Result<Event, Infallible>> {
    futures_lite::stream::unfold(items, |mut items| async move {
        loop {
            let item = match items.pending.take() {
                Some(item) => item,
                None => tokio::select! {
                    received = items.receiver.recv() => match received {
                        Ok(item) => item,
                        Err(RecvError::Lagged(missed)) => {
                            tracing::debug!(missed, "a live stream fell behind; it is told to reload");
                            FeedItem::Resync("this stream fell behind and missed events")
                        }
                        Err(RecvError::Closed) => return None,
                    },
                    () = items.stop.cancelled() => return None,
                    () = items.revoked.cancelled() => return None,
                },
            };
            let event = match item {
                FeedItem::Event { json, subject } => {
                    if let Some(ticket) = &items.ticket {
                        if subject.as_deref() != Some(&**ticket) {
                            continue;
                        }
                    }
                    Event::default().event("cloudevent").data(&*json)
                }
                FeedItem::Resync(reason) => Event::default()
                    .event("resync")
                    .data(serde_json::json!({ "reason": reason }).to_string()),
            };
            return Some((Ok(event), items));
        }
    })
}
