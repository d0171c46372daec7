//! The phases a ticket moves through, by name and in their normal order. Which moves between
//! them are allowed, and what each move checks, is the workflow's business (the service's
//! transition table), not this module's.

use crate::wire::wire_enum;

wire_enum! {
    /// A stage of a ticket's life. The wire form (`PHASE_DESIGN`, …) is what agents, events and the
    /// database use; the short name (`design`) is the human form used in context keys and summaries.
    #[derive(PartialOrd, Ord)]
    pub enum Phase, error UnknownPhase("phase") {
        /// Where every new ticket starts. It has no tasks, so it is left only when someone asks to
        /// move it to REQUIREMENTS.
        Backlog = "PHASE_BACKLOG",
        /// Entered from BACKLOG (or by unblocking). Left forward to DESIGN once its gate passes, or
        /// to BLOCKED.
        Requirements = "PHASE_REQUIREMENTS",
        /// Entered from REQUIREMENTS (or by unblocking). Left forward to IMPLEMENTATION once its
        /// gate passes, or to BLOCKED.
        Design = "PHASE_DESIGN",
        /// Entered from DESIGN, by regression from TESTING (then with re-entry tasks such as fixing the
        /// failing tests), or by unblocking. Left forward to TESTING once its gate passes, or to
        /// BLOCKED.
        Implementation = "PHASE_IMPLEMENTATION",
        /// Entered from IMPLEMENTATION (or by unblocking). Left forward to DEPLOYMENT once all tests
        /// pass; sent back to IMPLEMENTATION (regression) when they fail; or moved to BLOCKED.
        Testing = "PHASE_TESTING",
        /// Entered from TESTING. Left forward to DONE once a deployment succeeded, or to BLOCKED.
        /// It is not an unblock target: a ticket blocked here returns to TESTING.
        Deployment = "PHASE_DEPLOYMENT",
        /// Entered from any working phase when the work cannot go on. Left only by unblocking,
        /// to REQUIREMENTS, DESIGN, IMPLEMENTATION or TESTING (by default the phase it was
        /// blocked from, as the workflow's transition table says). Entering it checks no gate;
        /// leaving it for the phase it was blocked from or an earlier one checks none either,
        /// while going on to the phase right after that one checks the gate of the phase it was
        /// blocked from.
        Blocked = "PHASE_BLOCKED",
        /// Entered from DEPLOYMENT when its gate passes. Terminal: nothing moves a ticket out.
        Done = "PHASE_DONE",
    }
}

impl Phase {
    /// The normal sequence a ticket follows when nothing goes wrong; BLOCKED is not part of it.
    pub const SEQUENCE: [Phase; 7] = [
        Phase::Backlog,
        Phase::Requirements,
        Phase::Design,
        Phase::Implementation,
        Phase::Testing,
        Phase::Deployment,
        Phase::Done,
    ];

    /// The lowercase name people read: summary headings and context keys use it.
    pub fn short_name(self) -> &'static str {
        match self {
            Phase::Backlog => "backlog",
            Phase::Requirements => "requirements",
            Phase::Design => "design",
            Phase::Implementation => "implementation",
            Phase::Testing => "testing",
            Phase::Deployment => "deployment",
            Phase::Blocked => "blocked",
            Phase::Done => "done",
        }
    }

    /// The key under which this phase's context lives in a ticket's `full_context`
    /// so that aggregating one phase never touches another's.
    pub fn context_key(self) -> String {
        format!("{}_phase", self.short_name())
    }

    /// Inverse of [`Phase::context_key`], for reading a stored `full_context` back.
    pub fn from_context_key(key: &str) -> Option<Phase> {
        let short = key.strip_suffix("_phase")?;
        Phase::ALL.into_iter().find(|p| p.short_name() == short)
    }

    /// The phase a forward move goes to. `None` for DONE (terminal) and BLOCKED (which is left by
    /// unblocking, never forward).
    pub fn next(self) -> Option<Phase> {
        match self {
            Phase::Backlog => Some(Phase::Requirements),
            Phase::Requirements => Some(Phase::Design),
            Phase::Design => Some(Phase::Implementation),
            Phase::Implementation => Some(Phase::Testing),
            Phase::Testing => Some(Phase::Deployment),
            Phase::Deployment => Some(Phase::Done),
            Phase::Blocked | Phase::Done => None,
        }
    }

    /// Where the phase stands in the normal sequence; `None` for BLOCKED.
    pub fn sequence_position(phase: Phase) -> Option<usize> {
        Phase::SEQUENCE.iter().position(|p| *p == phase)
    }

    /// The phases before this one in the normal sequence, BACKLOG first (empty for BACKLOG);
    /// `None` for BLOCKED, which is not part of the sequence.
    pub fn earlier_in_sequence(self) -> Option<&'static [Phase]> {
        let sequence: &'static [Phase] = &Phase::SEQUENCE;
        Phase::sequence_position(self).map(|at| &sequence[..at])
    }

    /// Whether the ticket's work is over: nothing moves it out and no tasks are generated.
    pub fn is_terminal(self) -> bool {
        self == Phase::Done
    }
}

#[cfg(test)]
mod tests {
    use super::Phase::*;
    use super::*;

    #[test]
    fn wire_names_round_trip_through_text_and_serde() {
        for phase in Phase::ALL {
            assert_eq!(phase.as_str().parse::<Phase>(), Ok(phase));
            assert_eq!(phase.to_string(), phase.as_str());
            let json = serde_json::to_string(&phase).unwrap();
            assert_eq!(json, format!("\"{}\"", phase.as_str()));
            assert_eq!(serde_json::from_str::<Phase>(&json).unwrap(), phase);
            assert_eq!(Phase::from_context_key(&phase.context_key()), Some(phase));
        }
        assert_eq!(Design.short_name(), "design");
        assert_eq!(Design.context_key(), "design_phase");
    }

    #[test]
    fn parsing_is_exact_and_the_error_lists_every_phase() {
        let err = "phase_design".parse::<Phase>().unwrap_err();
        assert_eq!(err, UnknownPhase("phase_design".into()));
        assert_eq!(
            err.to_string(),
            "unknown phase `phase_design`; expected one of PHASE_BACKLOG, PHASE_REQUIREMENTS, \
             PHASE_DESIGN, PHASE_IMPLEMENTATION, PHASE_TESTING, PHASE_DEPLOYMENT, PHASE_BLOCKED, \
             PHASE_DONE"
        );
        assert!("DESIGN".parse::<Phase>().is_err());
        assert!(" PHASE_DESIGN".parse::<Phase>().is_err());
    }

    #[test]
    fn the_phases_before_one_are_those_of_the_sequence_up_to_it() {
        assert_eq!(Backlog.earlier_in_sequence(), Some(&[][..]));
        assert_eq!(
            Design.earlier_in_sequence(),
            Some(&[Backlog, Requirements][..])
        );
        assert_eq!(Done.earlier_in_sequence(), Some(&Phase::SEQUENCE[..6]));
        assert_eq!(Blocked.earlier_in_sequence(), None);
    }

    #[test]
    fn only_done_is_terminal() {
        for phase in Phase::ALL {
            assert_eq!(phase.is_terminal(), phase == Done);
        }
    }
}
