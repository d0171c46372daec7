//! `phase.entered`: the event's `data` and its wire facts (outcome events, rejection, HTTP route,
//! what it does). How the service applies it is the service's business.

use super::Request;
pub use crate::events::PhaseEntered;

impl Request for PhaseEntered {
    const TYPE: &'static str = "phase.entered";
    const OUTCOMES: &'static [&'static str] = &[];
    const REJECTION: Option<&'static str> = None;
    const TITLE: &'static str = "A ticket entered a phase (consumed)";
    const DESCRIPTION: &'static str = "A `phase.entered` event published to the requests exchange \
        (routing key `phase.entered`): a replay, or another system that moved a ticket and \
        recorded the visit (a `phase_history` row with `entry_work_done = false`). The worker \
        looks the visit up by `subject` and `data.history_id` (`data.phase_id` must match it) \
        and, when its entry work was not done yet, does it now: `tasks.generated` and \
        `context.updated`, exactly as on entering, with this event's `id` as their \
        `causationid`. When it was done (always the case for visits phaseflow recorded itself, \
        which do that work in the transaction that enters the phase), the event is acknowledged \
        as a duplicate with no effect. It has no outcome event: one whose `data` cannot be read \
        (no positive integer `history_id`, no known `phase_id`) is dead-lettered with the \
        reason; one naming a ticket or visit that does not exist, or a visit the ticket has \
        since left, is acknowledged with a warning in the worker's log.";
}
