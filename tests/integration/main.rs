//! The integration tests, in one binary (one link instead of one per file), against the real
//! Postgres and RabbitMQ of this machine. The workflow's rules are applied one request at a time
//! against Postgres alone (`rules`, through `common::rules`); messaging, faults and whole
//! lifecycles go through the broker, each test with its own database and its own exchange and
//! queue names (see `common`). A test that cannot
//! reach the services fails and says how to start them. `tests/metrics.rs` is a binary of its own:
//! it counts what a process's metrics recorder saw.

// a test may unwrap: a panic is the test failing
#![allow(clippy::unwrap_used)]

mod common;

mod acks;
mod agents;
mod api;
mod batches;
mod board;
mod board_agents;
mod board_budgets;
mod budgets;
mod claim_limits;
mod claims;
mod cluster;
mod context;
mod demo;
mod discovery;
mod documents;
mod entry;
mod faults;
mod fencing;
mod harness;
mod lifecycle;
mod limits;
mod mcp;
mod operations;
mod order;
mod overrides;
mod requests;
mod review_agent;
mod reviews;
mod roles;
mod rules;
mod services;
mod stalls;
mod trace;
mod upgrade;
mod usage;
