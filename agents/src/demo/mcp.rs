//! The demo's agents over MCP (`phaseflow demo --via mcp`): each agent runs its own `phaseflow
//! mcp` (stdio, its own token), as an MCP client such as Claude Code would, and calls tools
//! instead of publishing requests. What the agents do is the same either way.
//!
//! The MCP client is the SDK's (`rmcp`); this module only starts one per agent and calls tools.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Map, Value};

/// How to start each agent's MCP server.
#[derive(Clone)]
pub struct McpLaunch {
    /// the `phaseflow` binary, run as `phaseflow mcp`
    pub program: PathBuf,
    /// the environment the servers need beside their token (the database, the configuration)
    pub env: Vec<(String, String)>,
    /// each agent's token (never printed)
    pub tokens: BTreeMap<String, String>,
}

impl std::fmt::Debug for McpLaunch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("McpLaunch")
            .field("program", &self.program)
            .field("agents", &self.tokens.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// One MCP session per agent.
pub(super) struct McpAgents {
    sessions: BTreeMap<String, RunningService<RoleClient, ()>>,
}

impl McpAgents {
    /// Starts every agent's server and initializes its session.
    pub(super) async fn connect(launch: &McpLaunch) -> anyhow::Result<McpAgents> {
        let mut sessions = BTreeMap::new();
        for (agent, token) in &launch.tokens {
            let mut command = tokio::process::Command::new(&launch.program);
            command
                .arg("mcp")
                .envs(launch.env.iter().map(|(name, value)| (name, value)))
                .env("PHASEFLOW_TOKEN", token);
            let (transport, _) = TokioChildProcess::builder(command)
                .stderr(std::process::Stdio::null())
                .spawn()
                .with_context(|| format!("cannot start {} mcp", launch.program.display()))?;
            let session = ()
                .serve(transport)
                .await
                .with_context(|| format!("{agent}'s MCP server did not initialize"))?;
            sessions.insert(agent.clone(), session);
        }
        Ok(McpAgents { sessions })
    }

    /// Calls `tool` as `agent`: its answer, or `None` when the tool refused (an error result).
    pub(super) async fn call(
        &self,
        agent: &str,
        tool: &str,
        arguments: Map<String, Value>,
    ) -> anyhow::Result<Option<Value>> {
        let session = self
            .sessions
            .get(agent)
            .with_context(|| format!("{agent} has no MCP session"))?;
        let result = session
            .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
            .await
            .with_context(|| format!("{agent} could not call {tool}"))?;
        Ok(match result.is_error {
            Some(true) => None,
            _ => result.structured_content,
        })
    }

    /// Ends every session (each server exits when its stdin closes).
    pub(super) async fn close(self) {
        for (_, session) in self.sessions {
            session.cancel().await.ok();
        }
    }
}
