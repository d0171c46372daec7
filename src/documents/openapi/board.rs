//! What `openapi.json` says about the board's endpoints (`api::board`): the board's reads, the
//! operations page's figures, the dead letters and their replay, and the live stream.

use serde_json::json;

use super::{
    cursor_parameter, limit_parameter, one_of, query, text_schema, OperationDoc, Reply, BAD_QUERY,
    NOT_A_UUID, TICKET_NOT_FOUND,
};
use crate::api::board::operations::DEFAULT_DEAD_LETTERS;
use crate::api::board::views::{
    ArtifactsView, BoardView, CardView, ColumnView, DeadLettersView, MeView, OperationsView,
    ReplayedView, TimelineView,
};
use crate::api::board::MAX_SEARCH_CHARS;
use crate::api::BoardOperation;
use crate::config::Settings;
use crate::documents::Generators;
use crate::domain::Priority;
use crate::workflow::listings::TicketCursor;

const BROKER: (u16, &str) = (
    503,
    "`unavailable`: Postgres, or RabbitMQ, could not be asked; the reasons say which",
);

fn filters() -> Vec<serde_json::Value> {
    let api = Settings::defaults().api;
    vec![
        query(
            "priority",
            one_of(&Priority::ALL, Priority::as_str),
            "only tickets of this priority",
        ),
        query(
            "q",
            text_schema(MAX_SEARCH_CHARS),
            "only tickets whose title contains this text (case-insensitive; without the \
             whitespace around it)",
        ),
        limit_parameter(
            "api.max_page_limit",
            api.max_page_limit,
            &format!(
                "cards per column, by default `api.board_column_limit` ({} unless configured)",
                api.board_column_limit
            ),
        ),
    ]
}

pub(super) fn describe(operation: BoardOperation, generator: &mut Generators) -> OperationDoc {
    let board = |summary, success| OperationDoc {
        tag: "board",
        summary,
        description: None,
        query: Vec::new(),
        body: None,
        success,
        errors: &[TICKET_NOT_FOUND, NOT_A_UUID],
    };
    match operation {
        BoardOperation::Me => OperationDoc {
            errors: &[],
            ..board(
                "Who the bearer token belongs to, and whether it is an operator",
                Reply::json::<MeView>(200, "The token's agent", generator),
            )
        },
        BoardOperation::Board => OperationDoc {
            description: Some(
                "One column per phase (the normal sequence, then PHASE_BLOCKED), each with the \
                 number of its tickets that match the filters and its first page of cards, most \
                 recently updated first. Reads only.",
            ),
            query: filters(),
            errors: &[BAD_QUERY],
            ..board(
                "The board: every phase's tickets as cards",
                Reply::json::<BoardView>(200, "The board", generator),
            )
        },
        BoardOperation::Column => OperationDoc {
            description: Some(
                "A page of one column, after `cursor` (the column's `next_cursor`), with the same \
                 filters. Keyset pages on (`updated_at`, `id`), as the ticket listing.",
            ),
            query: filters()
                .into_iter()
                .chain([cursor_parameter(TicketCursor::PATTERN)])
                .collect(),
            errors: &[BAD_QUERY],
            ..board(
                "A page of one column of the board",
                Reply::json::<ColumnView>(200, "The column", generator),
            )
        },
        BoardOperation::Card => board(
            "One ticket as the board shows it",
            Reply::json::<CardView>(200, "The card", generator),
        ),
        BoardOperation::Timeline => OperationDoc {
            description: Some(
                "Every stored thing that happened to the ticket, oldest first: its moves (with \
                 actor, reason, correlation id, forced), tasks created, claimed, completed and \
                 failed, artifacts, gate validations and reviews.",
            ),
            ..board(
                "A ticket's timeline",
                Reply::json::<TimelineView>(200, "The timeline", generator),
            )
        },
        BoardOperation::Artifacts => OperationDoc {
            tag: "tickets",
            ..board(
                "A ticket's artifacts of every phase, oldest first",
                Reply::json::<ArtifactsView>(200, "The artifacts", generator),
            )
        },
        BoardOperation::Operations => OperationDoc {
            description: Some(
                "What the API can know of the running system: every worker and API process's own \
                 last report (`ops.replica_report_ms`), the requests and dead-letter queues as \
                 RabbitMQ counts them (null with `error` when it cannot be asked), the outbox \
                 backlog and its oldest event's age, live leases and the latest expiries.",
            ),
            errors: &[],
            ..board(
                "The running system",
                Reply::json::<OperationsView>(200, "The figures", generator),
            )
        },
        BoardOperation::DeadLetters => OperationDoc {
            description: Some(
                "The oldest messages of the dead-letter queue, with the reason, routing key, \
                 headers and body of each; they stay in the queue (they are read and put back, \
                 as RabbitMQ's management UI does it, which counts them as delivered once more).",
            ),
            query: vec![limit_parameter(
                "api.dead_letter_limit",
                Settings::defaults().api.dead_letter_limit,
                &format!("dead letters, by default {DEFAULT_DEAD_LETTERS}"),
            )],
            errors: &[BAD_QUERY, BROKER],
            ..board(
                "List dead letters",
                Reply::json::<DeadLettersView>(200, "The dead letters", generator),
            )
        },
        BoardOperation::ReplayDeadLetter => OperationDoc {
            description: Some(
                "Operators only. Takes the dead letter with this message id off the dead-letter \
                 queue and publishes it to the requests exchange with its original routing key, \
                 properties and message id (so it is applied at most once), and the header \
                 `x-phaseflow-replayed-by`; it is removed from the dead letters only once the \
                 broker confirmed the new copy. Its `user_id` is kept only when it is the API's \
                 own RabbitMQ user. No body.",
            ),
            errors: &[
                (403, "`forbidden`: the token's agent is not an operator"),
                (
                    404,
                    "`dead_letter_not_found`: no dead letter with this message id (replayed \
                     already?)",
                ),
                (
                    422,
                    "`invalid_request`: message_id is longer than 255 characters",
                ),
                BROKER,
            ],
            ..board(
                "Replay a dead letter",
                Reply::json::<ReplayedView>(200, "What was replayed", generator),
            )
        },
        BoardOperation::Stream => OperationDoc {
            description: Some(
                "Server-sent events: `event: cloudevent` with each published CloudEvent as its \
                 `data` (with `ticket_id`, only that ticket's), `event: resync` when events may \
                 have been missed (reload), and a comment line every `api.stream_keepalive_ms` \
                 while idle. Read it with the `Authorization` header (e.g. `fetch`), never with \
                 the token in the URL.",
            ),
            query: vec![query(
                "ticket_id",
                json!({"type": "string", "format": "uuid"}),
                "only this ticket's events",
            )],
            errors: &[BAD_QUERY],
            ..board(
                "The live stream of published events",
                Reply {
                    status: 200,
                    description: "A stream of server-sent events that lasts until the client \
                        or the API ends it",
                    content_type: "text/event-stream",
                    schema: json!({"type": "string"}),
                },
            )
        },
    }
}
