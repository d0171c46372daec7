//! What `openapi.json` says about the agents endpoints (`api::agents`).

use super::{body, OperationDoc, Reply, BAD_QUERY};
use crate::api::agents::{
    AgentView, AgentsView, IssuedView, RegisteredView, RegistrationBody, RevokedView,
};
use crate::api::AgentOperation;
use crate::documents::Generators;

const FORBIDDEN: (u16, &str) = (403, "`forbidden`: the token's agent is not an operator");
const NOT_FOUND: (u16, &str) = (
    404,
    "`agent_not_found`: no agent is registered with this id",
);
const BAD_ID: (u16, &str) = (
    422,
    "`invalid_request`: agent_id is not 1 to 64 of a-z, 0-9, `.`, `_` and `-`",
);

pub(super) fn describe(operation: AgentOperation, generator: &mut Generators) -> OperationDoc {
    let agents = |summary, success| OperationDoc {
        tag: "agents",
        summary,
        description: None,
        query: Vec::new(),
        body: None,
        success,
        errors: &[],
    };
    match operation {
        AgentOperation::List => OperationDoc {
            description: Some(
                "Every agent, by id: the registered ones, the agents of the configured tokens and \
                 `auth.operators` (`registered: false`, every role), and any other agent that \
                 holds a claim. Each with its roles, claim limit, live claims (stalled ones \
                 marked), last request and the tasks it finished; and the latest entries of the \
                 record of registrations, tokens issued and revocations. Never a token or its \
                 hash.",
            ),
            errors: &[BAD_QUERY],
            ..agents(
                "List agents",
                Reply::json::<AgentsView>(200, "The agents", generator),
            )
        },
        AgentOperation::Register => OperationDoc {
            description: Some(
                "Operators only. Registers an agent with its roles (`*`: every role), claim \
                 limit, operator flag and daily budget, and issues its first bearer token, which \
                 this answer shows once: phaseflow stores only its hash.",
            ),
            body: body::<RegistrationBody>(generator, true),
            errors: &[
                FORBIDDEN,
                (409, "`agent_exists`: an agent with this id is registered already"),
                (422, "`invalid_request`: the body is not a valid registration; the reasons name each field"),
            ],
            ..agents(
                "Register an agent",
                Reply::json::<RegisteredView>(201, "The agent and its token", generator),
            )
        },
        AgentOperation::Get => OperationDoc {
            errors: &[NOT_FOUND, BAD_ID],
            ..agents(
                "Read an agent",
                Reply::json::<AgentView>(200, "The agent", generator),
            )
        },
        AgentOperation::IssueToken => OperationDoc {
            description: Some(
                "Operators only. Issues another bearer token to a registered agent, shown once \
                 in this answer; with `rotate=true` its other tokens are revoked in the same \
                 transaction. No body.",
            ),
            query: vec![super::query(
                "rotate",
                serde_json::json!({"type": "string", "enum": ["true", "false"]}),
                "revoke the agent's other tokens (default false)",
            )],
            errors: &[FORBIDDEN, NOT_FOUND, BAD_ID],
            ..agents(
                "Issue an agent a token",
                Reply::json::<IssuedView>(201, "The token", generator),
            )
        },
        AgentOperation::RevokeTokens => OperationDoc {
            description: Some(
                "Operators only. Revokes every token of a registered agent: from the next \
                 request on, every API process answers them 401, and the live streams they \
                 opened end. The revocation is on the record. No body.",
            ),
            errors: &[FORBIDDEN, NOT_FOUND, BAD_ID],
            ..agents(
                "Revoke an agent's tokens",
                Reply::json::<RevokedView>(200, "What was revoked", generator),
            )
        },
    }
}
