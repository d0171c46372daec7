//! Agents take work as tools over the Model Context Protocol (docs/mcp.md): `phaseflow mcp`
//! serves one agent on stdio (its token in `PHASEFLOW_TOKEN`), and `phaseflow api` serves any
//! agent at `/mcp` (streamable HTTP, its bearer token on every request).
//!
//! Every tool is an existing operation of the HTTP API, reached through its functions: a tool
//! that changes something is applied as the matching request kind with
//! `Workflow::handle_request` (one transaction, the same events, the same rejections, the agent
//! its actor), and a tool that reads answers what the matching `GET` answers. So nothing here
//! decides a workflow question, holds SQL or speaks AMQP.
//!
//! - [`tools`]: the table of tools (names, descriptions for a model, argument and answer
//!   types, whose schemas are the tools' `inputSchema` and `outputSchema`) and what each does.
//! - `arguments`: the argument and answer types the table names, built from the request and
//!   event types `asyncapi.json` and `openapi.json` describe.
//! - `prompts`: the phase guidance of the workflow definition as MCP prompts.
//! - `wakeups`: what a waiting `claim_task` waits on: the notifications of new events.
//! - `calls`: the tool calls in progress, for a client's cancellation to reach them.
//! - `adapter`: the one module that uses the MCP SDK (`rmcp`): the protocol's handler, the stdio
//!   server and the streamable HTTP service.

mod adapter;
pub mod arguments;
pub mod calls;
mod prompts;
pub mod tools;
mod wakeups;

pub use adapter::{cancelled_request, http_service, run_stdio, McpHttp, McpService};
pub use calls::Calls;
pub use tools::{Tool, MAX_WAIT_SECONDS};
pub use wakeups::Wakeups;
