//! Agents: what an agent may do, whether it is registered or not. An agent's roles decide which
//! tasks it may claim, `max_claims` how many live leases it may hold at once, and `operator`
//! whether it may force moves, release others' tasks and manage agents.
//!
//! Pure rules: where a profile comes from (the agents table, the configured tokens, a default
//! for an agent nobody registered) is the workflow's business.

/// The role that stands for every role.
pub const ANY_ROLE: &str = "*";

/// What an agent may do.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentProfile {
    /// role names, or [`ANY_ROLE`]
    pub roles: Vec<String>,
    /// live leases it may hold at once
    pub max_claims: u32,
    pub operator: bool,
    /// whether it has a record (else it acts with every role and the default limit)
    pub registered: bool,
    /// what it may spend per UTC day, in US dollars (`None`: no limit)
    pub daily_cost_usd: Option<f64>,
}

impl AgentProfile {
    /// An agent without a record: every role, the default limit, an operator when configured
    /// as one.
    pub fn unregistered(default_max_claims: u32, operator: bool) -> Self {
        AgentProfile {
            roles: vec![ANY_ROLE.to_owned()],
            max_claims: default_max_claims,
            operator,
            registered: false,
            daily_cost_usd: None,
        }
    }

    /// Whether it has every role.
    pub fn any_role(&self) -> bool {
        self.roles.iter().any(|role| role == ANY_ROLE)
    }

    /// The roles a claim of "the next task" is limited to: `None` for every task.
    pub fn role_filter(&self) -> Option<&[String]> {
        (!self.any_role()).then_some(self.roles.as_slice())
    }

    /// Why it may not claim a task that needs `role`, if it may not.
    pub fn role_refusal(&self, role: Option<&str>) -> Option<String> {
        let role = role?;
        (!self.any_role() && !self.roles.iter().any(|held| held == role))
            .then(|| format!("requires role {role}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(roles: &[&str]) -> AgentProfile {
        AgentProfile {
            roles: roles.iter().map(|role| role.to_string()).collect(),
            max_claims: 3,
            operator: false,
            registered: true,
            daily_cost_usd: None,
        }
    }

    #[test]
    fn a_task_without_a_role_is_anyones() {
        assert_eq!(profile(&[]).role_refusal(None), None);
        assert_eq!(profile(&["tester"]).role_refusal(None), None);
    }

    #[test]
    fn a_role_is_needed_unless_the_agent_has_every_role() {
        assert_eq!(
            profile(&["tester"]).role_refusal(Some("developer")),
            Some("requires role developer".to_owned())
        );
        assert_eq!(
            profile(&["tester", "developer"]).role_refusal(Some("developer")),
            None
        );
        assert_eq!(profile(&["*"]).role_refusal(Some("developer")), None);
        assert_eq!(
            profile(&[]).role_refusal(Some("x")),
            Some("requires role x".into())
        );
    }

    #[test]
    fn the_filter_of_next_claims_follows_the_roles() {
        assert_eq!(profile(&["*", "tester"]).role_filter(), None);
        assert_eq!(
            profile(&["tester"]).role_filter(),
            Some(&["tester".to_owned()][..])
        );
        let unregistered = AgentProfile::unregistered(3, false);
        assert!(unregistered.any_role() && !unregistered.registered);
    }
}
