//! The broker stage: persistent messages through a private quorum queue (the worker's queue
//! type), `--concurrency` in flight, each published with a confirm and consumed with a manual
//! ack. No worker and no Postgres: this is the broker's share of a transition's latency.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::cli::Plan;
use crate::environment::BenchEnv;
use crate::load::{check_load, merge, LoadResult, Timing};
use crate::report::{ms, BrokerReport, Report};
use crate::run::progress;
use crate::world::World;

/// Runs the stage and writes its part of the report.
pub async fn run(
    world: &World,
    env: &BenchEnv,
    plan: &Plan,
    report: &mut Report,
) -> anyhow::Result<()> {
    progress(format!(
        "broker: persistent messages through a quorum queue, {} in flight, {:.0} s",
        plan.concurrency,
        plan.broker.as_secs_f64()
    ));
    let hop = measure(world, env, plan).await?;
    check_load("broker", &hop, &mut report.problems);
    report.broker = Some(BrokerReport::of(&hop));
    Ok(())
}

/// Latency runs from the publish to the delivery; `to_worker_ms` of the result holds the
/// confirm times.
async fn measure(world: &World, env: &BenchEnv, plan: &Plan) -> anyhow::Result<LoadResult> {
    let queue = format!("{}.hop", env.prefix);
    let setup = world.amqp.create_channel().await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    setup
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await?;
    let consuming = world.amqp.create_channel().await?;
    consuming.basic_qos(64, BasicQosOptions::default()).await?;
    let mut consumer = consuming
        .basic_consume(
            queue.as_str().into(),
            "phaseflow-bench-hop".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let waiting: Arc<Mutex<HashMap<u64, oneshot::Sender<Instant>>>> = Arc::default();
    let router = waiting.clone();
    let consuming_task = tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let at = Instant::now();
            let _ = delivery.ack(BasicAckOptions::default()).await;
            let Ok(bytes) = <[u8; 8]>::try_from(delivery.data.as_slice()) else {
                continue;
            };
            let waiter = router
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&u64::from_le_bytes(bytes));
            if let Some(waiter) = waiter {
                let _ = waiter.send(at);
            }
        }
    });
    let publishing = world.amqp.create_channel().await?;
    publishing
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + plan.warmup.min(Duration::from_secs(1));
    let end = measure_from + plan.broker;
    let mut senders = JoinSet::new();
    for _ in 0..plan.concurrency {
        let (publishing, queue, waiting, next) = (
            publishing.clone(),
            queue.clone(),
            waiting.clone(),
            next.clone(),
        );
        let timeout = world.timeout;
        senders.spawn(async move {
            let mut result = LoadResult::default();
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let sequence = next.fetch_add(1, Ordering::Relaxed);
                let (reply, delivered) = oneshot::channel();
                waiting
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(sequence, reply);
                let outcome = async {
                    let confirm = publishing
                        .basic_publish(
                            "".into(),
                            queue.as_str().into(),
                            BasicPublishOptions {
                                mandatory: true,
                                ..Default::default()
                            },
                            &sequence.to_le_bytes(),
                            lapin::BasicProperties::default().with_delivery_mode(2),
                        )
                        .await?
                        .await?;
                    let confirmed = sent.elapsed();
                    if !confirm.is_ack() {
                        bail!("the broker refused a message");
                    }
                    let at = tokio::time::timeout(timeout, delivered)
                        .await
                        .context("no delivery in time")?
                        .context("the consumer stopped")?;
                    Ok(Timing {
                        latency: at.saturating_duration_since(sent),
                        to_worker: Some(ms(confirmed)),
                        after_worker: None,
                    })
                }
                .await;
                if sent >= measure_from {
                    result.record(outcome);
                } else {
                    outcome?;
                }
            }
            Ok::<_, anyhow::Error>(result)
        });
    }
    let mut total = LoadResult::default();
    while let Some(joined) = senders.join_next().await {
        merge(&mut total, joined.context("a broker sender panicked")??);
    }
    total.elapsed = plan.broker;
    consuming_task.abort();
    let _ = consuming.close(200, "done".into()).await;
    let _ = publishing.close(200, "done".into()).await;
    let _ = setup
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await;
    let _ = setup.close(200, "done".into()).await;
    Ok(total)
}
