//! The outbox relay: publishes committed events to the events exchange (and outcomes to their
//! requester's `reply_to`) with publisher confirms and `mandatory`. A round claims and deletes a
//! batch of events in one statement and commits only once the broker confirmed them all.
//!
//! Several relays (one per worker replica) run at once: each claims rows with `skip locked`,
//! and a ticket's event is claimable only when its earlier events are published, so per-ticket
//! order (`ticketseq`) holds. Woken by NOTIFY, with polling as a fallback (notifications are
//! lost while the listener reconnects); after a round that took every ready event it waits for
//! the next notification, since a commit after its claim sends one. A crash between publish and commit publishes an event
//! again: delivery is at least once, and consumers de-duplicate by `id` or `ticketseq`.
//! The upkeep of the tables (pruning the inbox, vacuuming the outbox) is not the relay's: see
//! `worker::maintenance`.
//!
//! A lost broker connection is rebuilt per `amqp.reconnect_*`; an unavailable database is
//! retried every poll interval. Both kinds of outage are logged through the outage logs the
//! relay shares with the consumer and the workflow: one warning when it begins, one line when
//! it ends.

use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{AmqpSettings, OutboxSettings};
use crate::retry::OutageLog;
use crate::store;
use crate::telemetry::trace::{self, TRACEPARENT, TRACESTATE};
use crate::worker::health::Health;

use super::session::{Reconnect, SessionEnd, Sessions};

/// Everything the relay needs.
#[derive(Clone)]
pub struct Relay {
    pub pool: PgPool,
    pub amqp: AmqpSettings,
    pub outbox: OutboxSettings,
    pub health: Health,
    /// RabbitMQ outages, shared with the consumer
    pub rabbitmq: OutageLog,
    /// Postgres outages, shared with the workflow
    pub postgres: OutageLog,
}

/// Outcome of one publishing round.
enum Round {
    /// Events were published; `more`: the round may have left some that are ready now (it
    /// took as many as it may, or left some behind an earlier event another relay held).
    Published {
        count: usize,
        more: bool,
    },
    Idle,
}

impl Relay {
    /// Publishes until `shutdown`, then drains what is committed until `abandon`, as long as it
    /// has a session: after `shutdown`, a relay that cannot reach the broker stops, and what is
    /// committed waits in the outbox for another replica or the next start.
    pub async fn run(self, shutdown: CancellationToken, abandon: CancellationToken) {
        // the relay drains after `shutdown`: only `abandon` ends its reconnecting
        let reconnect = Reconnect {
            component: "relay",
            backoff: self.amqp.reconnect_backoff(),
            outages: &self.rabbitmq,
            stop: &abandon,
            give_up: Some(&shutdown),
            health: &self.health,
            set_connected: Health::set_relay_connected,
            close_stopped: (200, "relay stopping"),
            close_lost: (200, "relay stopping"),
        };
        let mut publishing = Publishing {
            relay: &self,
            listener: None,
            shutdown: &shutdown,
            abandon: &abandon,
        };
        reconnect.run(&mut publishing).await;
    }

    /// Publishes through one session: [`SessionEnd::Stop`] when done (shut down and drained, or
    /// abandoned), [`SessionEnd::Lost`] on a broker failure, which it logs.
    async fn publish_until_failure(
        &self,
        channel: &Channel,
        listener: &mut Option<PgListener>,
        shutdown: &CancellationToken,
        abandon: &CancellationToken,
    ) -> SessionEnd {
        let poll = Duration::from_millis(self.outbox.poll_interval_ms);
        loop {
            if abandon.is_cancelled() {
                return SessionEnd::Stop;
            }
            // notifications of commits this round's claim will see need no round of their own
            drain_notifications(listener).await;
            let round_started = Instant::now();
            let span = trace::publish_span(&self.amqp.events_exchange);
            match self
                .publish_round(channel, &span)
                .instrument(span.clone())
                .await
            {
                Ok(round) => {
                    self.postgres.succeeded("relay");
                    match round {
                        Round::Published { count, more } => {
                            metrics::counter!("phaseflow_outbox_published_total")
                                .increment(count as u64);
                            // after a round that took all there was, a commit since its claim
                            // has notified the listener; without one, claim again now
                            if more || listener.is_none() || shutdown.is_cancelled() {
                                continue;
                            }
                        }
                        Round::Idle if shutdown.is_cancelled() => {
                            tracing::info!("outbox drained");
                            return SessionEnd::Stop;
                        }
                        Round::Idle => {}
                    }
                }
                Err(RelayError::Broker(error)) => {
                    self.rabbitmq.failed(
                        "relay",
                        round_started,
                        &format_args!("publishing events failed: {error:#}"),
                        Duration::ZERO,
                    );
                    return SessionEnd::Lost;
                }
                Err(RelayError::Database(error)) => {
                    if store::is_transient(&error) {
                        self.postgres.failed("relay", round_started, &error, poll);
                    } else {
                        tracing::warn!(%error, "claiming events to publish failed; retrying");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(poll) => {}
                        () = abandon.cancelled() => return SessionEnd::Stop,
                    }
                    continue;
                }
            }
            if !channel.status().connected() {
                self.rabbitmq.failed(
                    "relay",
                    Instant::now(),
                    &"the relay's channel closed",
                    Duration::ZERO,
                );
                return SessionEnd::Lost;
            }
            self.wait_for_events(listener, poll, shutdown, abandon)
                .await;
        }
    }

    /// Sleeps until a NOTIFY, the poll interval, or shutdown.
    async fn wait_for_events(
        &self,
        listener: &mut Option<PgListener>,
        poll: Duration,
        shutdown: &CancellationToken,
        abandon: &CancellationToken,
    ) {
        if listener.is_none() {
            match PgListener::connect_with(&self.pool).await {
                Ok(mut connected) => match connected.listen(store::outbox::NOTIFY_CHANNEL).await {
                    Ok(()) => *listener = Some(connected),
                    Err(error) => {
                        tracing::debug!(%error, "cannot LISTEN for outbox notifications; polling")
                    }
                },
                Err(error) => {
                    tracing::debug!(%error, "cannot LISTEN for outbox notifications; polling")
                }
            }
        }
        let notified = async {
            match listener.as_mut() {
                Some(active) => {
                    if active.recv().await.is_err() {
                        *listener = None;
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep(poll) => {}
            () = shutdown.cancelled() => {}
            () = abandon.cancelled() => {}
        }
    }

    /// Claims a batch (deleting it from the outbox), publishes it with pipelined confirms, and
    /// commits the claim once the broker confirmed every event; rolls it back otherwise.
    async fn publish_round(
        &self,
        channel: &Channel,
        span: &tracing::Span,
    ) -> Result<Round, RelayError> {
        let mut transaction = self.pool.begin().await.map_err(RelayError::Database)?;
        let claimed = store::outbox::claim_for_publishing(
            &mut transaction,
            i64::from(self.outbox.batch_size),
        )
        .await
        .map_err(RelayError::Database)?;
        let batch = claimed.events;
        if batch.is_empty() {
            let _ = transaction.rollback().await;
            return Ok(Round::Idle);
        }
        span.record("messaging.batch.message_count", batch.len());
        for traceparent in batch
            .iter()
            .filter_map(|event| event.traceparent.as_deref())
        {
            trace::link(span, traceparent);
        }
        let mut confirms = Vec::with_capacity(batch.len());
        for event in &batch {
            let body = event.body_to_publish();
            let properties = event_properties(event);
            let confirm = channel
                .basic_publish(
                    self.amqp.events_exchange.as_str().into(),
                    event.event_type.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &body,
                    properties.clone(),
                )
                .await
                .map_err(|error| RelayError::Broker(error.into()))?;
            confirms.push((event.event_type.as_str(), "events", confirm));
            if let Some(reply_to) = &event.reply_to {
                let mut reply_properties = properties;
                if let Some(correlation) = &event.reply_correlation_id {
                    reply_properties = reply_properties
                        .with_correlation_id(ShortString::from(correlation.as_str()));
                }
                let confirm = channel
                    .basic_publish(
                        "".into(),
                        reply_to.as_str().into(),
                        BasicPublishOptions {
                            mandatory: true,
                            ..Default::default()
                        },
                        &body,
                        reply_properties,
                    )
                    .await
                    .map_err(|error| RelayError::Broker(error.into()))?;
                confirms.push((event.event_type.as_str(), "reply", confirm));
            }
        }
        for (event_type, destination, confirm) in confirms {
            match confirm
                .await
                .map_err(|error| RelayError::Broker(error.into()))?
            {
                Confirmation::Ack(None) | Confirmation::NotRequested => {}
                Confirmation::Ack(Some(_)) => {
                    // nobody subscribes to this event type (or the reply queue is gone): the
                    // event is published, there is just no one to deliver it to
                    metrics::counter!("phaseflow_outbox_unroutable_total", "destination" => destination).increment(1);
                    tracing::debug!(event_type, destination, "event was unroutable");
                }
                Confirmation::Nack(_) => {
                    let _ = transaction.rollback().await;
                    return Err(RelayError::Broker(anyhow::anyhow!(
                        "the broker refused to store an event"
                    )));
                }
            }
        }
        // every event is confirmed: their claim, which took them out of the outbox, can commit
        transaction.commit().await.map_err(RelayError::Database)?;
        metrics::counter!("phaseflow_outbox_rounds_total").increment(1);
        let now = chrono::Utc::now();
        let lag = metrics::histogram!("phaseflow_outbox_publish_lag_seconds");
        for event in &batch {
            let waited = (now - event.created_at).to_std().unwrap_or_default();
            lag.record(waited.as_secs_f64());
        }
        Ok(Round::Published {
            count: batch.len(),
            more: claimed.held_back || batch.len() >= self.outbox.batch_size as usize,
        })
    }
}

/// Takes the outbox notifications that have arrived already, without waiting: they are about
/// commits the next claim sees. A listener whose connection fails here is dropped and connected
/// again by the next wait.
async fn drain_notifications(listener: &mut Option<PgListener>) {
    let Some(active) = listener.as_mut() else {
        return;
    };
    loop {
        match futures_lite::future::poll_once(active.try_recv()).await {
            Some(Ok(Some(_))) => {}
            Some(Ok(None)) | Some(Err(_)) => {
                *listener = None;
                return;
            }
            None => return,
        }
    }
}

/// The relay's sessions, and what it keeps from one to the next.
struct Publishing<'a> {
    relay: &'a Relay,
    listener: Option<PgListener>,
    shutdown: &'a CancellationToken,
    abandon: &'a CancellationToken,
}

impl Sessions for Publishing<'_> {
    type Session = Channel;

    async fn open(&mut self) -> anyhow::Result<(Connection, Channel)> {
        let amqp = &self.relay.amqp;
        let (connection, _) = super::connect(amqp, "phaseflow worker (outbox relay)").await?;
        let channel = connection.create_channel().await?;
        super::topology::declare_exchanges(&channel, amqp).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok((connection, channel))
    }

    async fn run(&mut self, channel: &mut Channel) -> SessionEnd {
        self.relay
            .publish_until_failure(channel, &mut self.listener, self.shutdown, self.abandon)
            .await
    }
}

enum RelayError {
    Broker(anyhow::Error),
    Database(sqlx::Error),
}

/// An event's AMQP properties; its W3C trace context, when it has one, in the headers
/// `traceparent` and `tracestate`.
fn event_properties(event: &store::outbox::PendingEvent) -> BasicProperties {
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/cloudevents+json".into())
        .with_message_id(event.event_id.to_string().into())
        .with_type(event.event_type.as_str().into())
        .with_app_id("phaseflow".into())
        .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64);
    let Some(traceparent) = &event.traceparent else {
        return properties;
    };
    let mut headers = FieldTable::default();
    headers.insert(
        TRACEPARENT.into(),
        AMQPValue::LongString(traceparent.as_str().into()),
    );
    if let Some(tracestate) = &event.tracestate {
        headers.insert(
            TRACESTATE.into(),
            AMQPValue::LongString(tracestate.as_str().into()),
        );
    }
    properties.with_headers(headers)
}
