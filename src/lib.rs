//! phaseflow runs the multi-phase workflow of software tickets for teams of AI agents.
//!
//! Agents publish requests (CloudEvents) to RabbitMQ; the worker applies each in one Postgres
//! transaction (phase state machine, gates, task generation, context aggregation) and publishes
//! what happened as events through a transactional outbox. The same services are offered over
//! HTTP. `docs/protocol.md` describes the protocol, `docs/operations.md` running it and
//! `docs/design.md` the design.
//!
//! # Layout
//!
//! - [`domain`]: pure rules: phases and transitions, task templates, gates, context summaries.
//! - [`protocol`]: the wire format: the `phaseflow-client` crate's types (CloudEvents envelopes,
//!   request and event data, rejections), and the field-by-field reading of request data.
//! - [`store`]: all SQL; rows in, domain values out.
//! - [`workflow`]: the transactions that apply messages, one module per request kind
//!   (`workflow::requests`); the services both the worker and the API call.
//! - [`documents`]: the AsyncAPI and OpenAPI documents, generated from the types and routes.
//! - [`messaging`]: the service's RabbitMQ: topology, the request consumer, the outbox relay.
//! - [`worker`]: the `worker` command: its services (ops endpoints `/healthz`, `/readyz`,
//!   `/metrics`; relay; lease sweep; replica report; maintenance; consumer), started in one
//!   order and stopped in the reverse, and its health state.
//! - [`api`]: the `api` command: the HTTP API (axum) over the same workflow services.
//! - [`readiness`]: what `/readyz` answers, in the worker and the API alike.
//! - [`retry`]: the backoff of every retry loop, and the log lines of an outage (the client
//!   crate's, which agents reconnect with too).
//! - [`demo`]: the `demo` command: the simulated team of `phaseflow-agents` driving tickets to
//!   DONE, with a worker in the same process when asked.
//!
//! The `review-agent` command is `phaseflow_agents::review`, the reference validation agent,
//! which depends on the protocol crate alone.
//! - [`shutdown`]: SIGTERM and SIGINT, the stop signal of every long-running command.
//! - [`config`], [`telemetry`]: settings, logs and metrics.

pub mod admin;
pub mod api;
pub mod config;
pub mod demo;
pub mod documents;
pub mod domain;
pub mod mcp;
pub mod messaging;
pub mod protocol;
pub mod readiness;
pub mod replicas;
pub use phaseflow_client::retry;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod worker;
pub mod workflow;
