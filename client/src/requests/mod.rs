//! The request kinds as agents see them: one module each, holding the request's `data` type
//! and its wire facts (its type, the events one of which is its outcome, its rejection and the
//! codes that may carry, its HTTP route, what it does), and the one table below that lists them.
//! The service applies each kind in a module of its own, reading these facts; it cannot offer a
//! kind that is not in this table.

use crate::{DecodeError, RejectionCode};

pub mod claim_task;
pub mod complete_task;
pub mod create_ticket;
pub mod generate_tasks;
pub mod heartbeat_task;
pub mod phase_entered;
pub mod release_task;
pub mod review_gate;
pub mod set_ticket_budget;
pub mod submit_artifact;
pub mod transition;
pub mod validate_gate;

/// The HTTP route a request kind is also offered on: its method, its path, in the `{param}`
/// syntax axum and OpenAPI share, the status of a success and its `operationId`. A path whose
/// only parameter is `{ticket_id}` is served by the API's one handler for requests about a
/// ticket (the ticket is the `subject`, the body the `data`, the answer the outcome's `data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpRoute {
    pub method: RouteMethod,
    pub path: &'static str,
    /// 200 or 201
    pub success_status: u16,
    /// the `operationId` in `openapi.json`
    pub operation_id: &'static str,
}

/// The method of a request kind's HTTP route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMethod {
    /// asks for something to be done
    Post,
    /// sets a resource to what the body says
    Put,
}

impl RouteMethod {
    /// Upper case, as in a request line.
    pub const fn as_str(self) -> &'static str {
        match self {
            RouteMethod::Post => "POST",
            RouteMethod::Put => "PUT",
        }
    }
}

impl HttpRoute {
    pub const fn post(path: &'static str, success_status: u16, operation_id: &'static str) -> Self {
        HttpRoute {
            method: RouteMethod::Post,
            path,
            success_status,
            operation_id,
        }
    }

    pub const fn put(path: &'static str, success_status: u16, operation_id: &'static str) -> Self {
        HttpRoute {
            method: RouteMethod::Put,
            path,
            success_status,
            operation_id,
        }
    }
}

/// The wire facts of one request kind, stated by its `data` type.
pub trait Request: schemars::JsonSchema {
    /// The wire name, also the routing key.
    const TYPE: &'static str;
    /// One line: what the request asks for.
    const TITLE: &'static str;
    /// What it does and what it sets off; its outcome and rejection are listed from the
    /// constants below.
    const DESCRIPTION: &'static str;
    /// What `subject` is: `None` when it must name an existing ticket, else what it means
    /// when given (it is optional then).
    const OPTIONAL_SUBJECT: Option<&'static str> = None;
    /// The events one of which is the outcome of an applied request (empty for an event the
    /// worker consumes, which has no outcome of its own).
    const OUTCOMES: &'static [&'static str];
    /// The type of the rejection event; `None` for an event the worker consumes, which is
    /// dead-lettered when it cannot be read.
    const REJECTION: Option<&'static str>;
    /// The codes its rejection may carry (`invalid_request` included).
    const REJECTION_CODES: &'static [RejectionCode] = &[];
    /// The HTTP route the same request is offered on, when it has one.
    const ROUTE: Option<HttpRoute> = None;
}

macro_rules! request_kinds {
    ($($variant:ident => $module:ident :: $data:ident;)+) => {
        /// The `type` of a message phaseflow consumes from its requests exchange.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum RequestType {
            $($variant,)+
        }

        impl RequestType {
            /// Every type, in the table's order.
            pub const ALL: &'static [RequestType] = &[$(RequestType::$variant,)+];

            /// The wire name (also the routing key).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(RequestType::$variant => <$module::$data as Request>::TYPE,)+
                }
            }

            /// The type of the rejection event that answers a request of this type; `None`
            /// for an event the worker consumes, which is dead-lettered when it cannot be read.
            pub const fn rejection_type(self) -> Option<&'static str> {
                match self {
                    $(RequestType::$variant => <$module::$data as Request>::REJECTION,)+
                }
            }

            /// The events one of which answers an applied request of this type (none for a
            /// consumed event).
            pub const fn outcome_types(self) -> &'static [&'static str] {
                match self {
                    $(RequestType::$variant => <$module::$data as Request>::OUTCOMES,)+
                }
            }

            /// The codes a rejection of this type may carry.
            pub const fn rejection_codes(self) -> &'static [RejectionCode] {
                match self {
                    $(RequestType::$variant => <$module::$data as Request>::REJECTION_CODES,)+
                }
            }

            /// The HTTP route the request is also offered on, when it has one.
            pub const fn route(self) -> Option<HttpRoute> {
                match self {
                    $(RequestType::$variant => <$module::$data as Request>::ROUTE,)+
                }
            }

            /// One line: what the request asks for.
            pub const fn title(self) -> &'static str {
                match self {
                    $(RequestType::$variant => <$module::$data as Request>::TITLE,)+
                }
            }

            /// What `subject` is: `None` when it must name an existing ticket, else what it
            /// means when given (it is optional then).
            pub const fn optional_subject(self) -> Option<&'static str> {
                match self {
                    $(RequestType::$variant => <$module::$data as Request>::OPTIONAL_SUBJECT,)+
                }
            }

            /// What the request does and what it sets off.
            pub const fn description(self) -> &'static str {
                match self {
                    $(RequestType::$variant => <$module::$data as Request>::DESCRIPTION,)+
                }
            }

            /// The schema of the request's `data` (a reference into the generator's
            /// definitions).
            pub fn data_schema(self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                match self {
                    $(RequestType::$variant => {
                        generator.subschema_for::<$module::$data>()
                    })+
                }
            }

            /// Whether a message of this type gets an outcome event of its own.
            pub const fn is_request(self) -> bool {
                self.rejection_type().is_some()
            }

            /// The type a wire name names; an unknown name is a message to dead-letter.
            pub fn parse(name: &str) -> Result<RequestType, DecodeError> {
                RequestType::ALL
                    .iter()
                    .copied()
                    .find(|kind| kind.as_str() == name)
                    .ok_or_else(|| DecodeError::UnknownType {
                        name: name.to_owned(),
                        expected: RequestType::ALL
                            .iter()
                            .map(|kind| kind.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            }
        }

    };
}

request_kinds! {
    CreateTicket => create_ticket::CreateTicketData;
    Transition => transition::TransitionData;
    ValidateGate => validate_gate::ValidateGateData;
    GenerateTasks => generate_tasks::GenerateTasksData;
    CompleteTask => complete_task::CompleteTaskData;
    SubmitArtifact => submit_artifact::SubmitArtifactData;
    ClaimTask => claim_task::ClaimTaskData;
    HeartbeatTask => heartbeat_task::HeartbeatTaskData;
    ReleaseTask => release_task::ReleaseTaskData;
    ReviewGate => review_gate::ReviewGateData;
    PhaseEntered => phase_entered::PhaseEntered;
    SetTicketBudget => set_ticket_budget::SetTicketBudgetData;
}

impl RequestType {
    /// Whether an event of `event_type` can be the outcome of a request: one of a request
    /// kind's outcome events or its rejection. What a client waiting for its answer on
    /// `reply_to` may receive.
    pub fn is_outcome_type(event_type: &str) -> bool {
        RequestType::ALL.iter().any(|kind| {
            kind.rejection_type() == Some(event_type) || kind.outcome_types().contains(&event_type)
        })
    }

    /// Every event type that can be a request's outcome, without repeats: each kind's outcome
    /// events in the table's order, then each kind's rejection.
    pub fn all_outcome_types() -> Vec<&'static str> {
        let mut types: Vec<&'static str> = Vec::new();
        let successes = RequestType::ALL
            .iter()
            .flat_map(|kind| kind.outcome_types());
        let rejections = RequestType::ALL
            .iter()
            .filter_map(|kind| kind.rejection_type());
        for event_type in successes.copied().chain(rejections) {
            if !types.contains(&event_type) {
                types.push(event_type);
            }
        }
        types
    }
}
