//! The feed of published events for the API's live streams.
//!
//! [`EventFeed`] keeps a private, exclusive queue bound to the events exchange with `#` and hands
//! each event to every live stream through a broadcast channel. The queue holds at most
//! [`FEED_QUEUE_LIMIT`] events (the oldest are dropped), so a stalled API never makes the broker
//! hoard. After a lost session, subscribers are told to reload ([`FeedItem::Resync`]): events
//! published while the feed was away are not in it.
//!
//! No workflow decisions and no SQL here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Connection;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::session::{Reconnect, SessionEnd, Sessions};
use crate::config::AmqpSettings;
use crate::retry::OutageLog;
use crate::worker::health::Health;

/// The most events the feed's private queue holds for a slow API; older ones are dropped.
pub const FEED_QUEUE_LIMIT: i64 = 10_000;

/// What a live stream receives.
#[derive(Debug, Clone)]
pub enum FeedItem {
    /// a published event, the CloudEvent's JSON as published, and its `subject` (when it has one)
    Event {
        json: Arc<str>,
        subject: Option<Arc<str>>,
    },
    /// events may have been missed: reload
    Resync(&'static str),
}

/// Every event published to the events exchange, for as many subscribers as ask.
#[derive(Clone)]
pub struct EventFeed {
    sender: broadcast::Sender<FeedItem>,
    connected: Arc<AtomicBool>,
}

impl EventFeed {
    /// Starts following the events exchange until `stop` is cancelled; each subscriber may fall
    /// `buffer` events behind before it is told to reload.
    pub fn start(
        settings: AmqpSettings,
        buffer: usize,
        stop: CancellationToken,
    ) -> (EventFeed, tokio::task::JoinHandle<()>) {
        let (sender, _) = broadcast::channel(buffer.max(1));
        let feed = EventFeed {
            sender,
            connected: Arc::new(AtomicBool::new(false)),
        };
        let task = {
            let feed = feed.clone();
            tokio::spawn(async move {
                let outages = OutageLog::new("RabbitMQ");
                let health = Health::default();
                let mut sessions = FeedSessions {
                    settings: settings.clone(),
                    feed,
                    stop: stop.clone(),
                };
                Reconnect {
                    component: "event feed",
                    backoff: settings.reconnect_backoff(),
                    outages: &outages,
                    stop: &stop,
                    give_up: None,
                    health: &health,
                    set_connected: |_, _| {},
                    close_stopped: (200, "the API stopped"),
                    close_lost: (320, "the event feed reconnects"),
                }
                .run(&mut sessions)
                .await;
            })
        };
        (feed, task)
    }

    /// A receiver of every item from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<FeedItem> {
        self.sender.subscribe()
    }

    /// Whether the feed has a session with the broker now.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

struct FeedSessions {
    settings: AmqpSettings,
    feed: EventFeed,
    /// ends the running session too
    stop: CancellationToken,
}

impl Sessions for FeedSessions {
    type Session = lapin::Consumer;

    async fn open(&mut self) -> anyhow::Result<(Connection, lapin::Consumer)> {
        let settings = &self.settings;
        let (connection, _) = super::connect(settings, "phaseflow api events").await?;
        let channel = connection.create_channel().await?;
        super::topology::declare_exchanges(&channel, settings).await?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(FEED_QUEUE_LIMIT),
        );
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                arguments,
            )
            .await?;
        channel
            .queue_bind(
                queue.name().clone(),
                settings.events_exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok((connection, consumer))
    }

    async fn run(&mut self, consumer: &mut lapin::Consumer) -> SessionEnd {
        self.feed.connected.store(true, Ordering::Relaxed);
        // whatever was published while no session was up is not in this queue
        let _ = self
            .feed
            .sender
            .send(FeedItem::Resync("the live feed reconnected"));
        let end = loop {
            let next = tokio::select! {
                next = consumer.next() => next,
                () = self.stop.cancelled() => break SessionEnd::Stop,
            };
            match next {
                Some(Ok(delivery)) => {
                    let Ok(json) = String::from_utf8(delivery.data) else {
                        continue;
                    };
                    let subject = serde_json::from_str::<Subject>(&json)
                        .ok()
                        .and_then(|event| event.subject)
                        .map(Arc::from);
                    let _ = self.feed.sender.send(FeedItem::Event {
                        json: Arc::from(json),
                        subject,
                    });
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, "the live event feed lost RabbitMQ; reconnecting");
                    break SessionEnd::Lost;
                }
                None => {
                    tracing::warn!("the live event feed's consumer ended; reconnecting");
                    break SessionEnd::Lost;
                }
            }
        };
        self.feed.connected.store(false, Ordering::Relaxed);
        end
    }
}

/// The one member of an event the feed reads.
#[derive(serde::Deserialize)]
struct Subject {
    subject: Option<String>,
}
