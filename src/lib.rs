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
//! - [`protocol`]: the wire format: CloudEvents envelopes, event data types, rejections, and the
//!   field-by-field reading of request data.
//! - [`store`]: all SQL; rows in, domain values out.
//! - [`workflow`]: the transactions that apply messages, one module per request kind
//!   (`workflow::requests`); the services both the worker and the API call.
//! - [`documents`]: the AsyncAPI and OpenAPI documents, generated from the types and routes.
//! - [`messaging`]: all RabbitMQ: topology, the request consumer, outbox relay, request client.
//! - [`worker`]: the `worker` command: its services (ops endpoints `/healthz`, `/readyz`,
//!   `/metrics`; relay; lease sweep; replica report; maintenance; consumer), started in one
//!   order and stopped in the reverse, and its health state.
//! - [`api`]: the `api` command: the HTTP API (axum) over the same workflow services.
//! - [`readiness`]: what `/readyz` answers, in the worker and the API alike.
//! - [`retry`]: the backoff of every retry loop, and the log lines of an outage.
//! - [`demo`]: the `demo` command: simulated agents driving tickets to DONE.
//! - [`review_agent`]: the `review-agent` command: the reference validation agent, which
//!   answers review requests with verdicts judged by configured rules.
//! - [`shutdown`]: SIGTERM and SIGINT, the stop signal of every long-running command.
//! - [`config`], [`telemetry`]: settings, logs and metrics.

pub mod api;
pub mod config;
pub mod demo;
pub mod documents;
pub mod domain;
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
