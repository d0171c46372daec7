-- phaseflow schema: tickets and their phase state machine, tasks, gates, and the
-- inbox/outbox pair that makes message processing exactly-once in effect.

-- Phases are a closed set of values: a typo can never be stored.
create type phase as enum (
    'PHASE_BACKLOG',
    'PHASE_REQUIREMENTS',
    'PHASE_DESIGN',
    'PHASE_IMPLEMENTATION',
    'PHASE_TESTING',
    'PHASE_DEPLOYMENT',
    'PHASE_BLOCKED',
    'PHASE_DONE'
);

create type ticket_priority as enum ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL');

create type task_status as enum ('pending', 'in_progress', 'completed', 'failed');

create type gate_status as enum ('passed', 'failed', 'pending');

create table tickets (
    id uuid not null,
    title text not null,
    description text not null default '',
    priority ticket_priority not null default 'MEDIUM',
    phase_id phase not null default 'PHASE_BACKLOG',
    -- the phase the ticket was in before its latest transition; unblocking returns there
    previous_phase_id phase,
    -- one key per aggregated phase, `<phase>_phase`; written per key, never wholesale
    context jsonb not null default '{}'::jsonb,
    context_summary text not null default '',
    context_updated_at timestamptz,
    -- move to the next phase on its own when the last task completes and the gate passes
    auto_advance boolean not null default true,
    -- the last `ticketseq` handed out for an event about this ticket
    event_seq bigint not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint tickets_pk primary key (id),
    constraint tickets_title_length check (char_length(title) between 1 and 500)
);

create table phase_history (
    id bigint generated always as identity,
    ticket_id uuid not null,
    -- null only on the first row of a ticket (creation into BACKLOG)
    from_phase phase,
    to_phase phase not null,
    transition_reason text not null,
    transitioned_by text not null,
    artifacts jsonb not null default '{}'::jsonb,
    -- true when this row entered the phase by regression (TESTING -> IMPLEMENTATION)
    regression boolean not null default false,
    created_at timestamptz not null default now(),
    constraint phase_history_pk primary key (id),
    constraint phase_history_ticket_fk foreign key (ticket_id) references tickets (id) on delete cascade
);

create index phase_history_ticket_idx on phase_history (ticket_id, id);

create table tasks (
    id uuid not null,
    ticket_id uuid not null,
    -- the phase the task was generated for; it stays filed there
    phase_id phase not null,
    -- the phase_history row of the visit it was generated for (0: generated for a phase never entered)
    visit_history_id bigint not null,
    task_type text not null,
    description text not null,
    priority ticket_priority not null,
    status task_status not null default 'pending',
    -- ids of the tasks of the same visit it comes after
    dependencies uuid[] not null default '{}',
    result jsonb,
    error text,
    created_at timestamptz not null default now(),
    completed_at timestamptz,
    -- creation order (tasks of one visit share created_at)
    seq bigint generated always as identity,
    constraint tasks_pk primary key (id),
    constraint tasks_ticket_fk foreign key (ticket_id) references tickets (id) on delete cascade,
    constraint tasks_visit_type_unique unique (ticket_id, visit_history_id, phase_id, task_type)
);

create index tasks_ticket_phase_idx on tasks (ticket_id, phase_id);

-- One row per visit whose tasks were generated: generation is idempotent per visit.
create table task_generations (
    ticket_id uuid not null,
    phase_id phase not null,
    visit_history_id bigint not null,
    task_ids uuid[] not null,
    created_at timestamptz not null default now(),
    constraint task_generations_pk primary key (ticket_id, phase_id, visit_history_id),
    constraint task_generations_ticket_fk foreign key (ticket_id) references tickets (id) on delete cascade
);

create table phase_gate_artifacts (
    id uuid not null,
    ticket_id uuid not null,
    phase_id phase not null,
    artifact_type text not null,
    artifact_path text,
    artifact_content jsonb,
    collected_by text not null,
    -- the task whose result carried it, when it came with a task completion
    task_id uuid,
    collected_at timestamptz not null default now(),
    -- orders artifacts of one ticket and phase; the newest of a type is the one a gate judges
    seq bigint generated always as identity,
    constraint phase_gate_artifacts_pk primary key (id),
    constraint phase_gate_artifacts_ticket_fk foreign key (ticket_id) references tickets (id) on delete cascade
);

create index phase_gate_artifacts_ticket_phase_idx on phase_gate_artifacts (ticket_id, phase_id, seq);

create table phase_gate_results (
    id uuid not null,
    ticket_id uuid not null,
    phase_id phase not null,
    gate_status gate_status not null,
    requirements_met boolean not null,
    missing_artifacts jsonb not null default '[]'::jsonb,
    blocking_reasons jsonb not null default '[]'::jsonb,
    -- {artifacts_checked, artifacts_passed, tasks_completed}
    validation_result jsonb not null,
    validated_by text not null,
    validated_at timestamptz not null default now(),
    seq bigint generated always as identity,
    constraint phase_gate_results_pk primary key (id),
    constraint phase_gate_results_ticket_fk foreign key (ticket_id) references tickets (id) on delete cascade
);

create index phase_gate_results_ticket_phase_idx on phase_gate_results (ticket_id, phase_id, seq);

-- Every message a handler applied, by id: a redelivery or duplicate finds its row and changes nothing.
create table inbox (
    -- which consumer applied it: `requests` or `phase-entered`
    handler text not null,
    message_id text not null,
    message_type text not null,
    processed_at timestamptz not null default now(),
    constraint inbox_pk primary key (handler, message_id)
);

-- lets the relay prune rows past their retention
create index inbox_processed_at_idx on inbox (processed_at);

-- Events written in the same transaction as the change they describe; the relay publishes them.
create table outbox (
    id bigint generated always as identity,
    -- null for events about no existing ticket
    ticket_id uuid,
    -- the event's `ticketseq`; the relay never publishes a ticket's event before a lower one
    ticket_seq bigint,
    event_id uuid not null,
    event_type text not null,
    -- the whole CloudEvent as published
    payload jsonb not null,
    -- AMQP reply_to and correlation_id of the request whose outcome this is
    reply_to text,
    reply_correlation_id text,
    created_at timestamptz not null default now(),
    published_at timestamptz,
    constraint outbox_pk primary key (id),
    constraint outbox_ticket_seq_unique unique (ticket_id, ticket_seq)
);

create index outbox_unpublished_idx on outbox (id) where published_at is null;
create index outbox_unpublished_ticket_idx on outbox (ticket_id, ticket_seq) where published_at is null;
create index outbox_published_at_idx on outbox (published_at) where published_at is not null;

-- Wakes the relay as soon as events are committed (it also polls: notifications are lost on reconnect).
create function outbox_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('phaseflow_outbox', '');
    return null;
end;
$$;

create trigger outbox_notify_after_insert
    after insert on outbox
    for each statement execute function outbox_notify();
