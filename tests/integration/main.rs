//! The integration tests, in one binary (one link instead of one per file): the workflow's
//! rules and whole lifecycles against the real Postgres and RabbitMQ of this machine, each test
//! with its own database and its own exchange and queue names (see `common`). A test that cannot
//! reach the services fails and says how to start them. `tests/metrics.rs` is a binary of its own:
//! it counts what a process's metrics recorder saw.

mod common;

mod api;
mod batches;
mod context;
mod documents;
mod entry;
mod faults;
mod lifecycle;
mod order;
mod requests;
