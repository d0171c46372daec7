//! Agents as the workflow knows them: the profile each request is applied with (roles, claim
//! limit, operator), whether an agent nobody registered may act at all, and the registry that
//! operators manage: registering agents, issuing, revoking and rotating their tokens.
//!
//! A token is 32 random bytes from the operating system, written as `pf_` and 64 hex digits; it
//! is handed back once, when it is issued, and stored only as its SHA-256 hash. Nothing here
//! logs a token or its hash. No SQL here (`store::agents`), and no HTTP.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use chrono::{DateTime, Utc};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::domain::{AgentProfile, ANY_ROLE};
use crate::protocol::SYSTEM_ACTOR;
use crate::store::agents::{AgentRecord, LiveClaim, NewAgent, RecordEntry, TaskCounts};
use crate::store::{self, PgConnection};
use phaseflow_client::limits::is_valid_name;
use phaseflow_client::usage::UsageTotal;

use super::events::Origin;
use super::{Workflow, WorkflowError};

/// What phaseflow does with a request from an agent nobody registered (`agents.unregistered`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unregistered {
    /// it acts with every role and the default claim limit
    #[default]
    Allow,
    /// every request it makes is rejected `forbidden`
    Refuse,
}

/// Who is known without a record, and what an agent without one may do.
#[derive(Debug, Clone)]
pub struct AgentPolicy {
    /// the live leases an agent without its own `max_claims` may hold
    pub default_max_claims: u32,
    /// `auth.operators`: operators without a record (a registered agent's own flag counts too)
    pub operators: Vec<String>,
    /// the agents of the configured tokens: known, with every role
    pub configured: BTreeSet<String>,
    pub unregistered: Unregistered,
}

impl Default for AgentPolicy {
    /// The shipped defaults: nobody known without a record, every agent allowed, the default
    /// claim limit of `agents.default_max_claims`.
    fn default() -> Self {
        AgentPolicy {
            default_max_claims: DEFAULT_MAX_CLAIMS,
            operators: Vec::new(),
            configured: BTreeSet::new(),
            unregistered: Unregistered::Allow,
        }
    }
}

/// The shipped `agents.default_max_claims`.
pub const DEFAULT_MAX_CLAIMS: u32 = 3;

impl AgentPolicy {
    /// The profile of `agent`, from its record when it has one.
    pub fn profile(&self, agent: &str, record: Option<&AgentRecord>) -> AgentProfile {
        let listed_operator = self.operators.iter().any(|operator| operator == agent);
        match record {
            Some(record) => AgentProfile {
                roles: record.roles.clone(),
                max_claims: record
                    .max_claims
                    .and_then(|claims| u32::try_from(claims).ok())
                    .unwrap_or(self.default_max_claims),
                operator: record.operator || listed_operator,
                registered: true,
                daily_cost_usd: record.daily_cost_usd,
            },
            None => AgentProfile::unregistered(self.default_max_claims, listed_operator),
        }
    }

    /// Why a request from `origin`'s actor is refused outright, if it is: with
    /// `agents.unregistered = refuse`, an agent that is neither registered nor configured.
    pub fn refusal(&self, origin: &Origin, profile: &AgentProfile) -> Option<String> {
        let known = profile.registered
            || origin.actor == SYSTEM_ACTOR
            || self.configured.contains(&origin.actor)
            || self.operators.contains(&origin.actor);
        (self.unregistered == Unregistered::Refuse && !known).then(|| {
            format!(
                "agent {} is not registered, and this phaseflow refuses agents it does not know \
                 (agents.unregistered = refuse): an operator registers it with `phaseflow agents \
                 add` or POST /api/v1/agents",
                origin.actor
            )
        })
    }
}

/// The agents whose requests a worker applied since it last wrote their `last_seen_at`: one
/// statement a sweep round rather than a write per request. A note, not a rule: nothing is
/// decided from it, and what a crash loses is written again by the agent's next request.
#[derive(Debug, Default)]
pub(crate) struct SeenAgents {
    /// whether anything is kept (a worker's); the API notes its agents as it authenticates them
    kept: bool,
    names: std::sync::Mutex<BTreeSet<String>>,
}

impl SeenAgents {
    pub(crate) fn kept() -> Self {
        SeenAgents {
            kept: true,
            names: std::sync::Mutex::default(),
        }
    }

    pub(crate) fn note(&self, agents: &[&str]) {
        if !self.kept || agents.is_empty() {
            return;
        }
        if let Ok(mut names) = self.names.lock() {
            names.extend(agents.iter().map(|agent| agent.to_string()));
        }
    }

    fn take(&self) -> Vec<String> {
        self.names
            .lock()
            .map(|mut names| std::mem::take(&mut *names).into_iter().collect())
            .unwrap_or_default()
    }
}

/// A token as issued: shown once, never logged (its `Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken(String);

impl IssuedToken {
    /// A new random token.
    fn generate() -> Result<Self, WorkflowError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|error| {
            WorkflowError::Failed(anyhow::anyhow!("no random bytes for a token: {error}"))
        })?;
        let mut text = String::with_capacity(67);
        text.push_str("pf_");
        for byte in bytes {
            text.push_str(&format!("{byte:02x}"));
        }
        Ok(IssuedToken(text))
    }

    /// The token itself, to hand to the agent once.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IssuedToken(****)")
    }
}

/// The hash a token is stored and looked up by.
pub fn token_hash(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// An agent as listed: what it may do, and what it holds and did.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedAgent {
    pub agent_id: String,
    /// its roles, limit and operator flag, and whether it is registered
    pub profile: AgentProfile,
    pub daily_cost_usd: Option<f64>,
    /// its latest request (registered agents only)
    pub last_seen_at: Option<DateTime<Utc>>,
    pub live_claims: Vec<LiveClaim>,
    /// the tasks it completed and failed
    pub finished: TaskCounts,
    /// what its work cost on the current UTC day
    pub spent_today: UsageTotal,
}

/// A registration as asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub agent_id: String,
    pub roles: Vec<String>,
    pub max_claims: Option<u32>,
    pub operator: bool,
    pub daily_cost_usd: Option<f64>,
}

impl Registration {
    /// What is wrong with it, one reason per field.
    pub fn problems(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if !is_valid_name(&self.agent_id) {
            reasons.push(format!(
                "agent_id: `{}` is not an agent id: 1 to 64 of a-z, 0-9, `.`, `_` and `-`",
                self.agent_id
            ));
        }
        for role in &self.roles {
            if role != ANY_ROLE && !is_valid_name(role) {
                reasons.push(format!(
                    "roles: `{role}` is not a role name: 1 to 64 of a-z, 0-9, `.`, `_` and `-`, \
                     or `*` for every role"
                ));
            }
        }
        if self.roles.len() > MAX_ROLES {
            reasons.push(format!("roles: at most {MAX_ROLES} roles"));
        }
        if self.max_claims == Some(0) {
            reasons.push("max_claims: must be at least 1".to_owned());
        }
        if let Some(cost) = self.daily_cost_usd {
            if !cost.is_finite() || !(0.0..=MAX_DAILY_COST_USD).contains(&cost) {
                reasons.push(format!(
                    "daily_cost_usd: must be a number from 0 to {MAX_DAILY_COST_USD}"
                ));
            }
        }
        reasons
    }
}

/// The most roles one agent may have.
pub const MAX_ROLES: usize = 32;

/// The largest daily budget an agent may be given, in US dollars.
pub const MAX_DAILY_COST_USD: f64 = 1_000_000.0;

/// Why a change to the registry was not made.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("agent {0} is registered already")]
    Exists(String),
    #[error("agent {0} is not registered")]
    NotFound(String),
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
}

impl From<sqlx::Error> for RegistryError {
    fn from(error: sqlx::Error) -> Self {
        RegistryError::Workflow(error.into())
    }
}

impl Workflow {
    /// Writes `last_seen_at` of the registered agents among those whose requests were applied
    /// since the last call.
    pub async fn write_seen_agents(&self) -> Result<(), WorkflowError> {
        let seen = self.seen.take();
        if !seen.is_empty() {
            store::agents::note_seen(self.pool(), &seen).await?;
        }
        Ok(())
    }

    /// The profiles the requests of `actors` are applied with.
    pub(crate) async fn profiles(
        &self,
        connection: &mut PgConnection,
        actors: &[&str],
    ) -> Result<HashMap<String, AgentProfile>, WorkflowError> {
        let records = store::agents::identify(connection, actors).await?;
        Ok(actors
            .iter()
            .map(|actor| {
                let record = records.iter().find(|record| record.agent_id == *actor);
                (actor.to_string(), self.agents.profile(actor, record))
            })
            .collect())
    }

    /// The profile of an agent authenticated by a configured token.
    pub fn configured_profile(&self, agent: &str) -> AgentProfile {
        self.agents.profile(agent, None)
    }

    /// The profile of a registered agent.
    pub fn registered_profile(&self, record: &AgentRecord) -> AgentProfile {
        self.agents.profile(&record.agent_id, Some(record))
    }

    /// The configured default of `max_claims`.
    pub fn default_max_claims(&self) -> u32 {
        self.agents.default_max_claims
    }

    /// The agents of the configured tokens and `auth.operators`.
    pub fn configured_agents(&self) -> BTreeSet<String> {
        let mut agents = self.agents.configured.clone();
        agents.extend(self.agents.operators.iter().cloned());
        agents
    }

    /// Registers an agent and issues its first token.
    pub async fn register_agent(
        &self,
        registration: &Registration,
        by: &str,
    ) -> Result<(AgentRecord, IssuedToken), RegistryError> {
        let problems = registration.problems();
        if !problems.is_empty() {
            return Err(RegistryError::Invalid(problems));
        }
        let mut roles = registration.roles.clone();
        roles.sort();
        roles.dedup();
        let token = IssuedToken::generate()?;
        let mut transaction = self.pool().begin().await?;
        let new = NewAgent {
            agent_id: &registration.agent_id,
            roles: &roles,
            max_claims: registration.max_claims,
            operator: registration.operator,
            daily_cost_usd: registration.daily_cost_usd,
        };
        if !store::agents::insert(&mut transaction, &new, by).await? {
            return Err(RegistryError::Exists(registration.agent_id.clone()));
        }
        let hash = token_hash(token.reveal().as_bytes());
        store::agents::insert_token(&mut transaction, &registration.agent_id, &hash, by).await?;
        let record = store::agents::lock(&mut transaction, &registration.agent_id)
            .await?
            .ok_or_else(|| RegistryError::NotFound(registration.agent_id.clone()))?;
        transaction.commit().await?;
        tracing::info!(agent = %record.agent_id, roles = ?record.roles, by, "agent registered");
        Ok((record, token))
    }

    /// Registers an agent without issuing a token, or gives a registered one what the
    /// registration says (its tokens stay as they are): for agents that act over AMQP, whose
    /// identity the broker or the message gives.
    pub async fn define_agent(
        &self,
        registration: &Registration,
        by: &str,
    ) -> Result<(), RegistryError> {
        let problems = registration.problems();
        if !problems.is_empty() {
            return Err(RegistryError::Invalid(problems));
        }
        let mut transaction = self.pool().begin().await?;
        let new = NewAgent {
            agent_id: &registration.agent_id,
            roles: &registration.roles,
            max_claims: registration.max_claims,
            operator: registration.operator,
            daily_cost_usd: registration.daily_cost_usd,
        };
        store::agents::upsert(&mut transaction, &new, by).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Issues another token to a registered agent; `revoke_others` revokes its earlier ones in
    /// the same transaction (a rotation).
    pub async fn issue_token(
        &self,
        agent_id: &str,
        revoke_others: bool,
        by: &str,
    ) -> Result<IssuedToken, RegistryError> {
        let token = IssuedToken::generate()?;
        let mut transaction = self.pool().begin().await?;
        if store::agents::lock(&mut transaction, agent_id)
            .await?
            .is_none()
        {
            return Err(RegistryError::NotFound(agent_id.to_owned()));
        }
        if revoke_others {
            store::agents::revoke_tokens(&mut transaction, agent_id, by).await?;
        }
        let hash = token_hash(token.reveal().as_bytes());
        store::agents::insert_token(&mut transaction, agent_id, &hash, by).await?;
        transaction.commit().await?;
        tracing::info!(agent = %agent_id, by, rotated = revoke_others, "agent token issued");
        Ok(token)
    }

    /// Revokes every token of a registered agent; returns how many were live. Takes effect on
    /// every API process at once: each looks tokens up per request, and ends the live streams
    /// a revoked token opened.
    pub async fn revoke_tokens(&self, agent_id: &str, by: &str) -> Result<u64, RegistryError> {
        let mut transaction = self.pool().begin().await?;
        if store::agents::lock(&mut transaction, agent_id)
            .await?
            .is_none()
        {
            return Err(RegistryError::NotFound(agent_id.to_owned()));
        }
        let revoked = store::agents::revoke_tokens(&mut transaction, agent_id, by).await?;
        transaction.commit().await?;
        tracing::info!(agent = %agent_id, by, revoked, "agent tokens revoked");
        Ok(revoked)
    }

    /// Every agent phaseflow knows of (the registered ones, those of the configured tokens and
    /// `auth.operators`, and any other that holds a claim), by id, each with its live claims
    /// (oldest first, at most `claims_each`) and the tasks it finished; only `only` when given.
    pub async fn agent_listing(
        &self,
        only: Option<&str>,
        claims_each: usize,
    ) -> Result<Vec<ListedAgent>, WorkflowError> {
        let pool = self.pool();
        let named: Option<Vec<String>> = only.map(|agent| vec![agent.to_owned()]);
        let records: Vec<AgentRecord> = match only {
            Some(agent) => store::agents::find(pool, agent)
                .await?
                .into_iter()
                .collect(),
            None => store::agents::all(pool).await?,
        };
        let claims = store::agents::live_claims(pool, named.as_deref()).await?;
        let counts = store::agents::task_counts(pool, named.as_deref()).await?;
        let mut agents: BTreeMap<String, ListedAgent> = records
            .into_iter()
            .map(|record| {
                let listed = ListedAgent {
                    agent_id: record.agent_id.clone(),
                    profile: self.registered_profile(&record),
                    daily_cost_usd: record.daily_cost_usd,
                    last_seen_at: record.last_seen_at,
                    live_claims: Vec::new(),
                    finished: TaskCounts::default(),
                    spent_today: UsageTotal::default(),
                };
                (record.agent_id, listed)
            })
            .collect();
        let unregistered = |agent: &str| ListedAgent {
            agent_id: agent.to_owned(),
            profile: self.configured_profile(agent),
            daily_cost_usd: None,
            last_seen_at: None,
            live_claims: Vec::new(),
            finished: TaskCounts::default(),
            spent_today: UsageTotal::default(),
        };
        for agent in self.configured_agents() {
            if only.is_none_or(|only| only == agent) {
                agents
                    .entry(agent.clone())
                    .or_insert_with(|| unregistered(&agent));
            }
        }
        for claim in claims {
            let agent = agents
                .entry(claim.claimed_by.clone())
                .or_insert_with(|| unregistered(&claim.claimed_by));
            if agent.live_claims.len() < claims_each {
                agent.live_claims.push(claim);
            }
        }
        for (agent_id, finished) in counts {
            if let Some(agent) = agents.get_mut(&agent_id) {
                agent.finished = finished;
            }
        }
        for (agent_id, spent) in store::budgets::spent_today(pool, named.as_deref()).await? {
            agents
                .entry(agent_id.clone())
                .or_insert_with(|| unregistered(&agent_id))
                .spent_today = spent;
        }
        Ok(agents.into_values().collect())
    }

    /// The latest `limit` entries of the record of what was done to agents, newest first.
    pub async fn agent_record(&self, limit: i64) -> Result<Vec<RecordEntry>, WorkflowError> {
        Ok(store::agents::latest_record(self.pool(), limit).await?)
    }

    /// The registered agent a presented token belongs to (`None`: no live token is it).
    pub async fn agent_of_token(&self, token: &[u8]) -> Result<Option<AgentRecord>, WorkflowError> {
        Ok(store::agents::by_token(self.pool(), &token_hash(token)).await?)
    }

    /// Whether a token is still live.
    pub async fn token_is_live(&self, token: &[u8]) -> Result<bool, WorkflowError> {
        Ok(store::agents::token_is_live(self.pool(), &token_hash(token)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hidden_from_debug() {
        let one = IssuedToken::generate().unwrap();
        let two = IssuedToken::generate().unwrap();
        assert_ne!(one, two);
        assert_eq!(one.reveal().len(), 67);
        assert!(one.reveal().starts_with("pf_"));
        assert!(!format!("{one:?}").contains(&one.reveal()[3..]));
        assert_eq!(token_hash(b"x"), token_hash(b"x"));
        assert_ne!(
            token_hash(one.reveal().as_bytes()),
            token_hash(two.reveal().as_bytes())
        );
    }

    #[test]
    fn registrations_are_checked_field_by_field() {
        let good = Registration {
            agent_id: "dev-1".into(),
            roles: vec!["developer".into(), "*".into()],
            max_claims: Some(2),
            operator: false,
            daily_cost_usd: Some(12.5),
        };
        assert!(good.problems().is_empty());
        let bad = Registration {
            agent_id: "Dev 1".into(),
            roles: vec!["Tester".into()],
            max_claims: Some(0),
            daily_cost_usd: Some(-1.0),
            ..good
        };
        let problems = bad.problems();
        assert_eq!(problems.len(), 4, "{problems:?}");
        for field in ["agent_id", "roles", "max_claims", "daily_cost_usd"] {
            assert!(problems.iter().any(|p| p.starts_with(field)), "{field}");
        }
    }

    #[test]
    fn unregistered_agents_are_refused_only_when_configured_so() {
        let origin = |actor: &str| Origin {
            message_id: "m".into(),
            correlation_id: "c".into(),
            actor: actor.into(),
            reply: None,
            authenticated: false,
            trace: None,
        };
        let mut policy = AgentPolicy {
            default_max_claims: 3,
            configured: ["dev".to_owned()].into(),
            ..AgentPolicy::default()
        };
        let stranger = policy.profile("stranger", None);
        assert_eq!(policy.refusal(&origin("stranger"), &stranger), None);
        policy.unregistered = Unregistered::Refuse;
        assert!(policy.refusal(&origin("stranger"), &stranger).is_some());
        let dev = policy.profile("dev", None);
        assert_eq!(policy.refusal(&origin("dev"), &dev), None);
        assert_eq!(policy.refusal(&origin("system"), &stranger), None);
    }
}
