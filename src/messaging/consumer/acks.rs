//! Acknowledgements of one consumer channel's deliveries, grouped: deliveries settled together
//! (a batch's, once its transaction committed) are acked with one `basic.ack` with `multiple`
//! set when no earlier delivery of the channel is still being processed, and one by one
//! otherwise. On a quorum queue every acknowledgement frame is a command its log replicates, so
//! one frame for a run of deliveries spares the broker most of that work.
//!
//! Nothing is acked before its caller settled it, and nothing twice: a multiple ack names the
//! highest delivery it settles, and every delivery it covers is settled already (acked by it,
//! or acked or nacked before it). Frames are sent in the order they are decided, under one
//! lock, so a multiple ack never reaches the broker before an ack of a delivery it covers.
//!
//! One per channel: delivery tags restart with every channel. It does not decide what is
//! settled how; `settle` and the batch processing do.

use std::collections::BTreeSet;

use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::Acker;

/// The deliveries of one channel that are received and not settled yet.
#[derive(Debug, Default)]
pub(super) struct Acks {
    outstanding: std::sync::Mutex<BTreeSet<u64>>,
    /// held while acks are planned and sent, so that frames go out in the order decided
    sending: tokio::sync::Mutex<()>,
}

/// How a group of settled deliveries is acked: one ack with `multiple` naming the highest of
/// those no unsettled delivery precedes, and single acks for the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AckPlan {
    pub multiple: Option<u64>,
    pub singles: Vec<u64>,
}

/// Takes `settled` out of `outstanding` and plans their acks. A tag that is not outstanding
/// (settled before) is left out: acking it again would close the channel.
pub(super) fn plan(outstanding: &mut BTreeSet<u64>, settled: &[u64]) -> AckPlan {
    let settled: Vec<u64> = settled
        .iter()
        .copied()
        .filter(|tag| outstanding.remove(tag))
        .collect();
    let lowest_unsettled = outstanding.first().copied().unwrap_or(u64::MAX);
    let multiple = settled
        .iter()
        .copied()
        .filter(|tag| *tag < lowest_unsettled)
        .max();
    let mut singles: Vec<u64> = settled
        .iter()
        .copied()
        .filter(|tag| *tag > lowest_unsettled)
        .collect();
    singles.sort_unstable();
    AckPlan { multiple, singles }
}

impl Acks {
    /// A delivery arrived: it is outstanding until it is acked or nacked here. Deliveries are
    /// registered in the order they arrive, which is the order of their tags.
    pub(super) fn received(&self, tag: u64) {
        self.outstanding().insert(tag);
    }

    fn outstanding(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.outstanding
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Acks deliveries whose processing ended (committed, duplicate, or dead-lettered).
    pub(super) async fn ack(&self, deliveries: &[&Delivery]) {
        if deliveries.is_empty() {
            return;
        }
        let _sending = self.sending.lock().await;
        let tags: Vec<u64> = deliveries
            .iter()
            .map(|delivery| delivery.delivery_tag)
            .collect();
        let plan = plan(&mut self.outstanding(), &tags);
        let acker = |tag: u64| {
            deliveries
                .iter()
                .find(|delivery| delivery.delivery_tag == tag)
                .map(|delivery| &delivery.acker)
        };
        // sent while the lock is held: in the order decided
        if let Some(acker) = plan.multiple.and_then(acker) {
            send_ack(acker, true).await;
        }
        for acker in plan.singles.into_iter().filter_map(acker) {
            send_ack(acker, false).await;
        }
    }

    /// Requeues one delivery.
    pub(super) async fn requeue(&self, delivery: &Delivery) {
        let _sending = self.sending.lock().await;
        let unsettled = self.outstanding().remove(&delivery.delivery_tag);
        if unsettled {
            nack(&delivery.acker).await;
        }
    }

    /// Requeues those of `ackers` that are not settled yet (after a panic left them so).
    pub(super) async fn requeue_unsettled(&self, ackers: &[(u64, Acker)]) {
        let _sending = self.sending.lock().await;
        for (tag, acker) in ackers {
            let unsettled = self.outstanding().remove(tag);
            if unsettled {
                nack(acker).await;
            }
        }
    }
}

async fn send_ack(acker: &Acker, multiple: bool) {
    if let Err(error) = acker.ack(BasicAckOptions { multiple }).await {
        // the channel is gone (the session's loss is logged where it is noticed): the broker
        // redelivers the message and the inbox absorbs it
        tracing::info!(%error, "ack failed; the message will be redelivered and recognised as a duplicate");
    }
}

async fn nack(acker: &Acker) {
    let _ = acker
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outstanding(tags: &[u64]) -> BTreeSet<u64> {
        tags.iter().copied().collect()
    }

    #[test]
    fn a_run_with_nothing_unsettled_before_it_is_one_multiple_ack() {
        let mut open = outstanding(&[1, 2, 3, 4, 5]);
        let plan = plan(&mut open, &[1, 2, 3]);
        assert_eq!(
            plan,
            AckPlan {
                multiple: Some(3),
                singles: vec![]
            }
        );
        assert_eq!(open, outstanding(&[4, 5]));
    }

    #[test]
    fn deliveries_after_an_unsettled_one_are_acked_one_by_one() {
        let mut open = outstanding(&[1, 2, 3, 4, 5, 6]);
        // 1 and 3 still being processed elsewhere: 2 may be covered only by a later multiple
        let plan = plan(&mut open, &[2, 4, 6]);
        assert_eq!(
            plan,
            AckPlan {
                multiple: None,
                singles: vec![2, 4, 6]
            }
        );
        assert_eq!(open, outstanding(&[1, 3, 5]));
    }

    #[test]
    fn interleaved_groups_split_at_the_first_unsettled_delivery() {
        let mut open = outstanding(&[3, 4, 5, 6, 7]);
        let plan = plan(&mut open, &[7, 3, 4, 6]);
        assert_eq!(
            plan,
            AckPlan {
                multiple: Some(4),
                singles: vec![6, 7]
            }
        );
        // the last one settled: its multiple ack covers everything before it
        let plan = super::plan(&mut open, &[5]);
        assert_eq!(
            plan,
            AckPlan {
                multiple: Some(5),
                singles: vec![]
            }
        );
        assert!(open.is_empty());
    }

    #[test]
    fn a_delivery_settled_before_is_never_acked_again() {
        let mut open = outstanding(&[2, 3]);
        let plan = plan(&mut open, &[1, 2, 3]);
        assert_eq!(
            plan,
            AckPlan {
                multiple: Some(3),
                singles: vec![]
            }
        );
        let plan = super::plan(&mut open, &[3]);
        assert_eq!(
            plan,
            AckPlan {
                multiple: None,
                singles: vec![]
            }
        );
    }
}
