//! Typed settings, layered: the defaults compiled into the binary, then
//! `config/default.toml` and `config/local.toml` (directory: `PHASEFLOW_CONFIG_DIR`, default
//! `config`), then `PHASEFLOW_<SECTION>__<KEY>` environment variables, then the conventional
//! `DATABASE_URL`, `AMQP_URL`, `PHASEFLOW_OPS_ADDR`, `PHASEFLOW_API_ADDR`,
//! `PHASEFLOW_API_TOKENS` and `PHASEFLOW_OPERATORS`.
//!
//! This module only reads settings; it must not open connections. Secrets (passwords in URLs,
//! API tokens) never appear in `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;

use crate::domain::WorkflowDefinition;
use crate::retry::Backoff;

const DEFAULTS: &str = include_str!("../config/default.toml");

/// Everything a phaseflow process can be told.
#[derive(Clone, Deserialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub amqp: AmqpSettings,
    pub worker: WorkerSettings,
    pub outbox: OutboxSettings,
    pub context: ContextSettings,
    pub ops: OpsSettings,
    pub api: ApiSettings,
    pub workflow: WorkflowSettings,
    pub tasks: TaskSettings,
    pub agents: AgentSettings,
    pub budgets: BudgetSettings,
    pub mcp: McpSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    pub review_agent: ReviewAgentSettings,
    pub auth: AuthSettings,
}

#[derive(Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
}

/// Names of everything the worker declares on the broker, and consumer tuning.
#[derive(Clone, Deserialize)]
pub struct AmqpSettings {
    /// the broker's address, or the addresses of a cluster's nodes separated by commas (env
    /// `AMQP_URL`)
    pub url: String,
    /// the addresses of a cluster's nodes, as a list; when set (and `AMQP_URL` is not), they
    /// are used instead of `url`
    #[serde(default)]
    pub urls: Vec<String>,
    pub requests_exchange: String,
    pub events_exchange: String,
    pub requests_queue: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    pub prefetch: u16,
    pub batch_size: u16,
    pub concurrent_batches: u16,
    pub delivery_limit: u32,
    pub max_message_bytes: usize,
    pub heartbeat_secs: u16,
    pub reconnect_min_delay_ms: u64,
    pub reconnect_max_delay_ms: u64,
}

impl AmqpSettings {
    /// The broker addresses, in the order given: `urls`, else `url` split at its commas.
    pub fn addresses(&self) -> Vec<String> {
        if self.urls.is_empty() {
            phaseflow_client::broker::addresses(&self.url)
        } else {
            self.urls
                .iter()
                .flat_map(|url| phaseflow_client::broker::addresses(url))
                .collect()
        }
    }

    /// The broker's addresses and exchange names, as a client of the service needs them.
    pub fn broker(&self) -> phaseflow_client::Broker {
        phaseflow_client::Broker {
            url: self.addresses().join(","),
            requests_exchange: self.requests_exchange.clone(),
            events_exchange: self.events_exchange.clone(),
            heartbeat_secs: self.heartbeat_secs,
        }
    }

    /// How the consumer and the relay space their attempts to reach RabbitMQ again.
    pub fn reconnect_backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.reconnect_min_delay_ms),
            Duration::from_millis(self.reconnect_max_delay_ms),
        )
    }
}

#[derive(Clone, Deserialize)]
pub struct WorkerSettings {
    pub migrate_on_start: bool,
    pub shutdown_grace_ms: u64,
    pub retry_min_delay_ms: u64,
    pub retry_max_delay_ms: u64,
}

impl WorkerSettings {
    /// How what fails because Postgres is unavailable is retried: a message's transaction,
    /// the migrations at start.
    pub fn retry_backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.retry_min_delay_ms),
            Duration::from_millis(self.retry_max_delay_ms),
        )
    }
}

#[derive(Clone, Deserialize)]
pub struct OutboxSettings {
    pub batch_size: u32,
    pub poll_interval_ms: u64,
    pub vacuum_interval_ms: u64,
    pub inbox_retention_hours: u32,
}

/// Who may do what beyond an agent's requests.
#[derive(Clone, Deserialize)]
pub struct AuthSettings {
    /// agents that may force a transition past a gate (over AMQP: the broker-validated
    /// `user_id`; over HTTP: the token's agent)
    pub operators: Vec<String>,
}

/// Claims and leases.
#[derive(Clone, Deserialize)]
pub struct TaskSettings {
    /// the lease of a claim that names none, in seconds
    pub default_lease_seconds: u32,
    /// expiries after which a task fails instead of returning to pending
    pub max_attempts: u32,
    /// how often each worker looks for leases that ran out
    pub lease_sweep_interval_ms: u64,
    /// leases expired per sweep transaction
    pub lease_sweep_batch: u32,
    /// a claimed task without progress for this long gets `task.stalled`; 0: never
    pub stall_after_seconds: u32,
    /// a stalled task with still no progress this long after its stall is released; 0: never
    pub stall_release_after_seconds: u32,
}

/// What agents may do.
#[derive(Clone, Deserialize)]
pub struct AgentSettings {
    /// the live leases an agent without its own `max_claims` may hold at once
    pub default_max_claims: u32,
    /// what becomes of requests from agents nobody registered
    pub unregistered: crate::workflow::Unregistered,
}

/// What tickets may cost when nobody says, and what happens when one has cost its budget.
#[derive(Clone, Deserialize)]
pub struct BudgetSettings {
    /// the token budget of a ticket created without one (absent: no limit)
    #[serde(default)]
    pub ticket_tokens: Option<u64>,
    /// the budget in US dollars of a ticket created without one (absent: no limit)
    #[serde(default)]
    pub ticket_cost_usd: Option<f64>,
    /// move a ticket whose spend used up a limit to PHASE_BLOCKED
    pub block_when_exceeded: bool,
}

/// Where spans go: exported over OTLP/HTTP when `otlp_endpoint` is set, else nowhere (trace
/// context still travels from requests to events).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct TelemetrySettings {
    /// the collector's base URL, e.g. `http://127.0.0.1:4318` (spans go to `/v1/traces`)
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` or `http/json`
    pub otlp_protocol: String,
    /// the share of new traces recorded and exported, 0 to 1; a request whose caller recorded
    /// its trace is recorded too
    pub sampling_ratio: f64,
    /// where the board links a trace id to: a URL with `{trace_id}` in it, e.g. Jaeger's
    /// `http://127.0.0.1:16686/trace/{trace_id}` (none: the board shows the id alone)
    pub trace_url: Option<String>,
}

/// What `telemetry.trace_url` holds in the place of the trace id.
pub const TRACE_ID_PLACEHOLDER: &str = "{trace_id}";

impl TelemetrySettings {
    /// The link to a trace (32 hex digits) that `trace_url` makes, if it is set.
    pub fn trace_link(&self, trace_id: &str) -> Option<String> {
        self.trace_url
            .as_ref()
            .map(|template| template.replace(TRACE_ID_PLACEHOLDER, trace_id))
    }
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            otlp_endpoint: None,
            otlp_protocol: "http/protobuf".to_owned(),
            sampling_ratio: 1.0,
            trace_url: None,
        }
    }
}

/// The MCP server (`phaseflow mcp`, `/mcp` on the API).
#[derive(Clone, Deserialize)]
pub struct McpSettings {
    /// how long a `claim_task` waiting for a task goes without looking when no new event
    /// arrives (new events wake it at once)
    pub recheck_ms: u64,
    /// the `Host` headers `/mcp` accepts (empty: any; every call carries a bearer token)
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

impl McpSettings {
    /// `recheck_ms` as a duration.
    pub fn recheck(&self) -> Duration {
        Duration::from_millis(self.recheck_ms)
    }
}

impl Settings {
    /// The budgets of tickets created without one, and whether a used-up budget blocks.
    pub fn budget_policy(&self) -> crate::workflow::BudgetPolicy {
        crate::workflow::BudgetPolicy {
            ticket_default: phaseflow_client::budget::TicketBudget {
                tokens: self.budgets.ticket_tokens,
                cost_usd: self.budgets.ticket_cost_usd,
            },
            block_when_exceeded: self.budgets.block_when_exceeded,
        }
    }

    /// The lease rules the workflow applies: lengths, expiries and stalls.
    pub fn lease_policy(&self) -> crate::domain::LeasePolicy {
        crate::domain::LeasePolicy {
            default_lease_seconds: self.tasks.default_lease_seconds,
            max_attempts: self.tasks.max_attempts,
            stall_after_seconds: self.tasks.stall_after_seconds,
            stall_release_after_seconds: self.tasks.stall_release_after_seconds,
        }
    }

    /// Who is known without a record (the agents of `api.tokens`, `auth.operators`) and what an
    /// agent without one may do (`agents.*`).
    pub fn agent_policy(&self) -> crate::workflow::AgentPolicy {
        crate::workflow::AgentPolicy {
            default_max_claims: self.agents.default_max_claims,
            operators: self.auth.operators.clone(),
            configured: self.api.tokens.keys().cloned().collect(),
            unregistered: self.agents.unregistered,
        }
    }
}

impl TaskSettings {
    pub fn lease_sweep_interval(&self) -> Duration {
        Duration::from_millis(self.lease_sweep_interval_ms)
    }
}

pub use phaseflow_agents::review::{ReviewAgentSettings, ReviewRuleKind, ReviewRuleSettings};

#[derive(Clone, Deserialize)]
pub struct ContextSettings {
    pub max_tokens: usize,
}

#[derive(Clone, Deserialize)]
pub struct OpsSettings {
    pub addr: SocketAddr,
    /// how often each worker and API process reports itself in the `replicas` table
    pub replica_report_ms: u64,
}

impl OpsSettings {
    pub fn replica_report_interval(&self) -> Duration {
        Duration::from_millis(self.replica_report_ms)
    }
}

#[derive(Clone, Deserialize)]
pub struct ApiSettings {
    pub addr: SocketAddr,
    pub max_body_bytes: usize,
    /// tickets or tasks per page of a listing when `limit` is not given
    pub default_page_limit: usize,
    /// the largest `limit` a listing accepts
    pub max_page_limit: usize,
    /// cards per board column when the request gives no `limit`
    pub board_column_limit: usize,
    /// events kept for each live stream that has not read them yet; a stream further behind
    /// is told to reload (`resync`)
    pub stream_buffer: usize,
    /// a comment line on every idle live stream this often, so proxies keep it open
    pub stream_keepalive_ms: u64,
    /// the most dead letters one listing reads off the dead-letter queue
    pub dead_letter_limit: usize,
    /// agent id → bearer token
    #[serde(default)]
    pub tokens: BTreeMap<String, String>,
}

#[derive(Clone, Deserialize)]
pub struct WorkflowSettings {
    pub definition_path: PathBuf,
}

impl Settings {
    /// Loads the layered settings from the process environment.
    pub fn load() -> anyhow::Result<Self> {
        let dir = std::env::var_os("PHASEFLOW_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("config"));
        Self::load_from(&dir)
    }

    /// The settings compiled into the binary (`config/default.toml`) alone, without
    /// configuration files or environment: what the generated documents describe.
    pub fn defaults() -> Self {
        Figment::from(Toml::string(DEFAULTS))
            .extract()
            .expect("the compiled-in config/default.toml is valid")
    }

    /// Loads the settings with `dir` as the configuration directory.
    pub fn load_from(dir: &Path) -> anyhow::Result<Self> {
        let figment = Figment::from(Toml::string(DEFAULTS))
            .merge(Toml::file(dir.join("default.toml")))
            .merge(Toml::file(dir.join("local.toml")))
            .merge(Env::prefixed("PHASEFLOW_").split("__").ignore(&[
                "api_tokens",
                "ops_addr",
                "api_addr",
                "config_dir",
            ]))
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database.url".into()),
            )
            .merge(Env::raw().only(&["AMQP_URL"]).map(|_| "amqp.url".into()))
            .merge(
                Env::raw()
                    .only(&["PHASEFLOW_OPS_ADDR"])
                    .map(|_| "ops.addr".into()),
            )
            .merge(
                Env::raw()
                    .only(&["PHASEFLOW_API_ADDR"])
                    .map(|_| "api.addr".into()),
            );
        let mut settings: Settings = figment
            .extract()
            .context("invalid configuration (config files or PHASEFLOW_* environment)")?;
        if let Ok(operators) = std::env::var("PHASEFLOW_OPERATORS") {
            settings.auth.operators.extend(
                operators
                    .split(',')
                    .map(str::trim)
                    .filter(|agent| !agent.is_empty())
                    .map(str::to_owned),
            );
        }
        if let Ok(tokens) = std::env::var("PHASEFLOW_API_TOKENS") {
            settings.api.tokens.extend(parse_api_tokens(&tokens)?);
        }
        if !settings.workflow.definition_path.is_absolute()
            && !settings.workflow.definition_path.exists()
        {
            let beside_config = dir.join(
                settings
                    .workflow
                    .definition_path
                    .file_name()
                    .unwrap_or_default(),
            );
            if beside_config.exists() {
                settings.workflow.definition_path = beside_config;
            }
        }
        // `AMQP_URL` in the environment names the broker whatever the files say
        if std::env::var("AMQP_URL").is_ok_and(|url| !url.trim().is_empty()) {
            settings.amqp.urls.clear();
        }
        // an empty setting (an unset variable in a compose file, say) means none
        settings.telemetry.trace_url = settings
            .telemetry
            .trace_url
            .take()
            .filter(|template| !template.trim().is_empty());
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        check_broker_addresses(&self.amqp.addresses())?;
        if self.amqp.prefetch == 0 {
            bail!("amqp.prefetch must be at least 1");
        }
        if self.mcp.recheck_ms < 100 {
            bail!("mcp.recheck_ms must be at least 100");
        }
        if !["http/protobuf", "http/json"].contains(&self.telemetry.otlp_protocol.as_str()) {
            bail!("telemetry.otlp_protocol must be http/protobuf or http/json");
        }
        if !(0.0..=1.0).contains(&self.telemetry.sampling_ratio) {
            bail!("telemetry.sampling_ratio must be from 0 to 1");
        }
        if let Some(template) = &self.telemetry.trace_url {
            if !(template.starts_with("http://") || template.starts_with("https://"))
                || !template.contains(TRACE_ID_PLACEHOLDER)
            {
                bail!(
                    "telemetry.trace_url must be an http:// or https:// URL with {TRACE_ID_PLACEHOLDER} in it"
                );
            }
        }
        if self.amqp.batch_size == 0 {
            bail!("amqp.batch_size must be at least 1");
        }
        if self.amqp.concurrent_batches == 0 {
            bail!("amqp.concurrent_batches must be at least 1");
        }
        if self.amqp.delivery_limit == 0 {
            bail!("amqp.delivery_limit must be at least 1");
        }
        if self.outbox.batch_size == 0 {
            bail!("outbox.batch_size must be at least 1");
        }
        for (name, min, max) in [
            (
                "amqp.reconnect",
                self.amqp.reconnect_min_delay_ms,
                self.amqp.reconnect_max_delay_ms,
            ),
            (
                "worker.retry",
                self.worker.retry_min_delay_ms,
                self.worker.retry_max_delay_ms,
            ),
        ] {
            if max == 0 || min > max {
                bail!("{name}_max_delay_ms must be at least 1 and at least {name}_min_delay_ms");
            }
        }
        let lease = crate::domain::LEASE_SECONDS;
        if !lease.contains(&self.tasks.default_lease_seconds) {
            bail!(
                "tasks.default_lease_seconds must be between {} and {}",
                lease.start(),
                lease.end()
            );
        }
        if self.tasks.max_attempts == 0 {
            bail!("tasks.max_attempts must be at least 1");
        }
        if self.agents.default_max_claims == 0 {
            bail!("agents.default_max_claims must be at least 1");
        }
        if let Some(tokens) = self.budgets.ticket_tokens {
            if !(1..=phaseflow_client::budget::BUDGET_TOKENS_MAX).contains(&tokens) {
                bail!(
                    "budgets.ticket_tokens must be from 1 to {}",
                    phaseflow_client::budget::BUDGET_TOKENS_MAX
                );
            }
        }
        if let Some(cost) = self.budgets.ticket_cost_usd {
            let max = phaseflow_client::budget::BUDGET_COST_USD_MAX;
            if !(cost.is_finite() && cost > 0.0 && cost <= max) {
                bail!("budgets.ticket_cost_usd must be more than 0 and at most {max}");
            }
        }
        if self.tasks.lease_sweep_interval_ms == 0 || self.tasks.lease_sweep_batch == 0 {
            bail!("tasks.lease_sweep_interval_ms and tasks.lease_sweep_batch must be at least 1");
        }
        if self.api.max_page_limit == 0
            || self.api.default_page_limit == 0
            || self.api.default_page_limit > self.api.max_page_limit
        {
            bail!(
                "api.default_page_limit and api.max_page_limit must be at least 1, and the \
                 default at most the maximum"
            );
        }
        if self.api.board_column_limit == 0 || self.api.board_column_limit > self.api.max_page_limit
        {
            bail!("api.board_column_limit must be between 1 and api.max_page_limit");
        }
        if self.api.stream_buffer == 0
            || self.api.stream_keepalive_ms == 0
            || self.api.dead_letter_limit == 0
            || self.ops.replica_report_ms == 0
        {
            bail!(
                "api.stream_buffer, api.stream_keepalive_ms, api.dead_letter_limit and \
                 ops.replica_report_ms must be at least 1"
            );
        }
        if self.database.max_connections < 2 {
            bail!("database.max_connections must be at least 2 (one is held by the outbox relay)");
        }
        let amqp = &self.amqp;
        for (key, name) in [
            ("amqp.requests_exchange", &amqp.requests_exchange),
            ("amqp.events_exchange", &amqp.events_exchange),
            ("amqp.requests_queue", &amqp.requests_queue),
            ("amqp.dead_letter_exchange", &amqp.dead_letter_exchange),
            ("amqp.dead_letter_queue", &amqp.dead_letter_queue),
        ] {
            // an AMQP short string: lapin cannot send a longer name
            if name.len() > 255 {
                bail!(
                    "{key} is {} bytes long; AMQP allows at most 255",
                    name.len()
                );
            }
        }
        Ok(())
    }

    /// The workflow definition (templates and gates): the configured file when it exists,
    /// else the copy compiled into the binary. A broken file is an error that says where.
    pub fn workflow_definition(&self) -> anyhow::Result<WorkflowDefinition> {
        let path = &self.workflow.definition_path;
        if path.exists() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(WorkflowDefinition::from_toml_str(
                &text,
                &path.display().to_string(),
            )?)
        } else {
            Ok(WorkflowDefinition::builtin()?)
        }
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.database.acquire_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.worker.shutdown_grace_ms)
    }
}

/// Parses `agent-1=secret1,agent-2=secret2`.
pub fn parse_api_tokens(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut tokens = BTreeMap::new();
    for (index, pair) in text.split(',').map(str::trim).enumerate() {
        if pair.is_empty() {
            continue;
        }
        let Some((agent, token)) = pair.split_once('=') else {
            bail!(
                "PHASEFLOW_API_TOKENS entry {} is not `agent=token`",
                index + 1
            );
        };
        let (agent, token) = (agent.trim(), token.trim());
        if agent.is_empty() || token.is_empty() {
            bail!(
                "PHASEFLOW_API_TOKENS entry {} has an empty agent id or token",
                index + 1
            );
        }
        tokens.insert(agent.to_owned(), token.to_owned());
    }
    Ok(tokens)
}

pub use phaseflow_client::broker::redact_url;

/// Refuses a broker address list that cannot work: empty, or with an address that is not an
/// AMQP URL (each named with its password masked, and its place in the list).
fn check_broker_addresses(addresses: &[String]) -> anyhow::Result<()> {
    if addresses.is_empty() {
        bail!("amqp.url (AMQP_URL) or amqp.urls must name at least one broker address");
    }
    for (index, address) in addresses.iter().enumerate() {
        if let Err(error) = address.parse::<lapin::uri::AMQPUri>() {
            // the parser's message may quote the address, password and all
            let error = error.replace(address.as_str(), &redact_url(address));
            bail!(
                "broker address {} of {} ({}) is not an AMQP URL: {error}",
                index + 1,
                addresses.len(),
                redact_url(address)
            );
        }
    }
    Ok(())
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("database.url", &redact_url(&self.database.url))
            .field("database.max_connections", &self.database.max_connections)
            .field(
                "amqp.addresses",
                &redact_url(&self.amqp.addresses().join(",")),
            )
            .field("amqp.requests_exchange", &self.amqp.requests_exchange)
            .field("amqp.events_exchange", &self.amqp.events_exchange)
            .field("amqp.prefetch", &self.amqp.prefetch)
            .field("amqp.batch_size", &self.amqp.batch_size)
            .field("amqp.concurrent_batches", &self.amqp.concurrent_batches)
            .field("ops.addr", &self.ops.addr)
            .field("api.addr", &self.api.addr)
            .field(
                "api.tokens",
                &self
                    .api
                    .tokens
                    .keys()
                    .map(|agent| format!("{agent}=****"))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_review_agents_shipped_settings_are_valid() {
        for dir in [
            Path::new("/nonexistent").to_path_buf(),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
        ] {
            let settings = Settings::load_from(&dir).expect("the settings load");
            let rules = phaseflow_agents::review::check_settings(&settings.review_agent)
                .expect("the shipped rules are valid");
            assert_eq!(rules.len(), 4, "{}", dir.display());
        }
    }

    #[test]
    fn api_tokens_parse_from_the_documented_form() {
        let tokens = parse_api_tokens("agent-1=secret1, agent-2=secret2").unwrap();
        assert_eq!(tokens.get("agent-1").map(String::as_str), Some("secret1"));
        assert_eq!(tokens.get("agent-2").map(String::as_str), Some("secret2"));
        assert!(parse_api_tokens("agent-1").is_err());
        assert!(parse_api_tokens("=x").is_err());
    }

    #[test]
    fn urls_lose_their_password_in_logs() {
        assert_eq!(
            redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:****@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
    }

    #[test]
    fn broker_names_longer_than_amqp_allows_are_refused() {
        let mut settings = Settings::load_from(Path::new("/nonexistent")).unwrap();
        settings.amqp.events_exchange = "x".repeat(256);
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("amqp.events_exchange"), "{error}");
        settings.amqp.events_exchange = "x".repeat(255);
        assert!(settings.validate().is_ok());
    }

    #[test]
    fn compiled_defaults_reach_local_services() {
        let settings = Settings::load_from(Path::new("/nonexistent")).unwrap();
        assert!(settings.database.url.contains("127.0.0.1:5432"));
        assert!(settings.amqp.url.contains("127.0.0.1:5672"));
        assert_eq!(settings.ops.addr.to_string(), "127.0.0.1:9090");
        assert_eq!(settings.api.addr.to_string(), "127.0.0.1:8080");
        assert!(format!("{settings:?}").contains("guest:****"));
    }

    #[test]
    fn broker_addresses_come_from_urls_else_from_url_split_at_commas() {
        let mut settings = Settings::load_from(Path::new("/nonexistent")).unwrap();
        settings.amqp.url = "amqp://g:p@h1:5701/%2f,amqp://g:p@h2:5702/%2f".to_owned();
        assert_eq!(
            settings.amqp.addresses(),
            ["amqp://g:p@h1:5701/%2f", "amqp://g:p@h2:5702/%2f"]
        );
        assert!(settings.validate().is_ok());
        assert_eq!(
            settings.amqp.broker().url,
            "amqp://g:p@h1:5701/%2f,amqp://g:p@h2:5702/%2f"
        );
        settings.amqp.urls = vec!["amqp://g:p@h3:5703/%2f".to_owned()];
        assert_eq!(settings.amqp.addresses(), ["amqp://g:p@h3:5703/%2f"]);
        let shown = format!("{settings:?}");
        assert!(shown.contains("g:****@h3"), "{shown}");
        assert!(!shown.contains("g:p@"), "{shown}");
    }

    #[test]
    fn a_broker_address_that_is_not_an_amqp_url_is_refused_with_its_password_masked() {
        let mut settings = Settings::load_from(Path::new("/nonexistent")).unwrap();
        settings.amqp.url = "amqp://g:secret@h1:5701/%2f,http://g:secret@h2:5702/".to_owned();
        let error = settings.validate().unwrap_err().to_string();
        assert!(error.contains("broker address 2 of 2"), "{error}");
        assert!(error.contains("http://g:****@h2:5702/"), "{error}");
        assert!(!error.contains("secret"), "{error}");
        settings.amqp.url = " , ".to_owned();
        assert!(settings.validate().is_err());
    }

    #[test]
    fn a_retry_maximum_below_its_minimum_is_refused() {
        let mut settings = Settings::load_from(Path::new("/nonexistent")).unwrap();
        assert!(settings.validate().is_ok());
        settings.amqp.reconnect_min_delay_ms = 3_000;
        settings.amqp.reconnect_max_delay_ms = 2_000;
        assert!(settings.validate().is_err());
        settings.amqp.reconnect_min_delay_ms = 0;
        settings.amqp.reconnect_max_delay_ms = 0;
        assert!(settings.validate().is_err());
    }
}
