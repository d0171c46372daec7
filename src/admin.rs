//! `phaseflow agents`: operators manage agents from the command line, against the database
//! directly (the same registry the HTTP endpoints change; the actor on the record is `cli`).
//!
//! A token is printed once, by the command that issued it; nothing else prints or logs one.

use std::fmt::Write as _;

use anyhow::Context;

use crate::config::Settings;
use crate::store;
use crate::workflow::{Registration, RegistryError, Workflow};

/// The actor the record names for what the command line did.
pub const CLI_ACTOR: &str = "cli";

/// What `phaseflow agents` is asked to do.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentsCommand {
    /// register an agent and print its first token
    Add(Registration),
    /// print every agent
    List,
    /// revoke every token of an agent
    Revoke { agent_id: String },
    /// revoke every token of an agent and print a new one
    Rotate { agent_id: String },
}

/// Runs the command (creating the database and applying migrations first, when needed) and
/// returns what to print.
pub async fn run(settings: &Settings, command: AgentsCommand) -> anyhow::Result<String> {
    store::migrate(&settings.database.url).await?;
    let pool = store::connect(&settings.database.url, 2, settings.acquire_timeout()).await?;
    let workflow = Workflow::new(
        pool.clone(),
        settings.workflow_definition()?,
        settings.context.max_tokens,
    )
    .with_agents(settings.agent_policy());
    let printed = match command {
        AgentsCommand::Add(registration) => {
            let (record, token) = workflow
                .register_agent(&registration, CLI_ACTOR)
                .await
                .map_err(explain)?;
            format!(
                "registered {} (roles: {})\ntoken (shown once; phaseflow keeps only its hash):\n{}",
                record.agent_id,
                roles_text(&record.roles),
                token.reveal()
            )
        }
        AgentsCommand::List => list(&workflow).await?,
        AgentsCommand::Revoke { agent_id } => {
            let revoked = workflow
                .revoke_tokens(&agent_id, CLI_ACTOR)
                .await
                .map_err(explain)?;
            format!("revoked {revoked} token(s) of {agent_id}")
        }
        AgentsCommand::Rotate { agent_id } => {
            let token = workflow
                .issue_token(&agent_id, true, CLI_ACTOR)
                .await
                .map_err(explain)?;
            format!(
                "revoked the tokens of {agent_id}; its new token (shown once):\n{}",
                token.reveal()
            )
        }
    };
    pool.close().await;
    Ok(printed)
}

fn explain(error: RegistryError) -> anyhow::Error {
    anyhow::anyhow!("{error}")
}

fn roles_text(roles: &[String]) -> String {
    if roles.is_empty() {
        "none".to_owned()
    } else {
        roles.join(", ")
    }
}

/// Every registered agent, one line each.
async fn list(workflow: &Workflow) -> anyhow::Result<String> {
    let agents = workflow
        .agent_listing(None, usize::MAX)
        .await
        .context("cannot read the agents")?;
    let mut text = format!(
        "{:<24} {:<28} {:>10} {:>8} {:>11} {}",
        "AGENT", "ROLES", "MAX_CLAIMS", "OPERATOR", "LIVE_CLAIMS", "LAST_SEEN"
    );
    let registered: Vec<_> = agents
        .iter()
        .filter(|agent| agent.profile.registered)
        .collect();
    for agent in &registered {
        let seen = agent
            .last_seen_at
            .map_or_else(|| "never".to_owned(), |at| at.to_rfc3339());
        let _ = write!(
            text,
            "\n{:<24} {:<28} {:>10} {:>8} {:>11} {}",
            agent.agent_id,
            roles_text(&agent.profile.roles),
            agent.profile.max_claims,
            if agent.profile.operator { "yes" } else { "no" },
            agent.live_claims.len(),
            seen
        );
    }
    if registered.is_empty() {
        text.push_str("\n(no agents registered: `phaseflow agents add NAME --role ROLE`)");
    }
    Ok(text)
}
