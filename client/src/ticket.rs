//! The small value types that describe tickets and their tasks: priorities, task statuses,
//! identifiers and field limits.
//!
//! These are what raw message and API fields are parsed into at the boundary, so that past it no
//! function takes a bare `String` or `Uuid` with a domain meaning. Pure values: nothing here
//! knows how tickets are stored or transported.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::limits::{REASON_MAX_CHARS, TITLE_MAX_CHARS};

use crate::wire::wire_enum;

wire_enum! {
    /// How urgent a ticket or task is. Tickets default to MEDIUM when the creator does not say.
    #[derive(Default, PartialOrd, Ord)]
    pub enum Priority, error UnknownPriority("priority") {
        /// Can wait.
        Low = "LOW",
        /// The default for a ticket whose creator gave no priority.
        #[default]
        Medium = "MEDIUM",
        /// Should be picked up before MEDIUM work.
        High = "HIGH",
        /// Drop other work: e.g. a deployment or fixing tests that broke after a regression.
        Critical = "CRITICAL",
    }
}

wire_enum! {
    /// Where a task is in its life. An agent may claim a pending task, holding it for a lease; it
    /// reports it `completed` or `failed`; a failed task may be reported again, a completed one may
    /// not.
    pub enum TaskStatus, error UnknownTaskStatus("task status") {
        /// Free: generated and not held by anyone (never claimed, released, or its lease ran out).
        Pending = "pending",
        /// One agent holds a lease on it.
        Claimed = "claimed",
        /// Done; its result feeds the phase context and its artifacts the gate.
        Completed = "completed",
        /// The agent gave up or it broke; it keeps the gate from passing until reported again.
        Failed = "failed",
    }
}

impl TaskStatus {
    /// Still waiting for work: such a task keeps its phase's gate pending and stops new tasks
    /// from being generated for the phase.
    pub fn is_open(self) -> bool {
        matches!(self, TaskStatus::Pending | TaskStatus::Claimed)
    }

    /// An agent has reported on it, one way or the other.
    pub fn is_finished(self) -> bool {
        matches!(self, TaskStatus::Completed | TaskStatus::Failed)
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Hash,
            PartialOrd,
            Ord,
            Serialize,
            Deserialize,
            schemars::JsonSchema,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random (v4) id, for something being created now.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            /// The raw UUID, for the storage and transport layers.
            pub fn as_uuid(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            /// A fresh random id: there is no meaningful "zero" id.
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id! {
    /// Names one ticket everywhere: the `subject` of its messages, its rows, its API paths.
    TicketId
}

uuid_id! {
    /// Names one task; agents quote it when they report the task finished.
    TaskId
}

uuid_id! {
    /// Names one claim of a task (`task.claimed`); a heartbeat, release or report that quotes it
    /// is refused once it is no longer the task's live claim.
    ClaimId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_use_uppercase_wire_names_and_default_to_medium() {
        assert_eq!(Priority::default(), Priority::Medium);
        for p in Priority::ALL {
            assert_eq!(p.as_str().parse::<Priority>(), Ok(p));
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.as_str())
            );
            assert_eq!(p.to_string(), p.as_str());
        }
        assert_eq!(
            "urgent".parse::<Priority>().unwrap_err().to_string(),
            "unknown priority `urgent`; expected one of LOW, MEDIUM, HIGH, CRITICAL"
        );
        assert!(Priority::Critical > Priority::High);
    }

    #[test]
    fn task_statuses_use_snake_case_and_split_into_open_and_finished() {
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>(), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
            assert_ne!(s.is_open(), s.is_finished());
        }
        assert_eq!(TaskStatus::Claimed.as_str(), "claimed");
        assert!(TaskStatus::Pending.is_open());
        assert!(TaskStatus::Failed.is_finished());
        assert!("done"
            .parse::<TaskStatus>()
            .unwrap_err()
            .to_string()
            .contains("pending, claimed, completed, failed"));
    }

    #[test]
    fn ids_are_plain_uuids_on_the_wire() {
        let id = TicketId::new();
        let text = id.to_string();
        assert_eq!(text.parse::<TicketId>().unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{text}\""));
        assert_ne!(TaskId::new(), TaskId::new());
        assert!("not-a-uuid".parse::<TaskId>().is_err());
    }
}
