-- Reviews: a gate may require an independent agent's review once every other condition holds.
-- A review judges one state of its phase (`state`: what the phase's artifacts and tasks were
-- when it was asked for); a later artifact or task changes the state and asks for a new one.

-- one row per state of a phase for which a review was asked: it is asked once per state
create table gate_review_requests (
    ticket_id uuid not null,
    phase_id phase not null,
    state text not null,
    requested_at timestamptz not null default now(),
    constraint gate_review_requests_pk primary key (ticket_id, phase_id, state),
    constraint gate_review_requests_ticket_fk foreign key (ticket_id) references tickets (id) on delete cascade
);

create table gate_reviews (
    id uuid not null,
    ticket_id uuid not null,
    phase_id phase not null,
    -- the state of the phase the reviewer saw
    state text not null,
    -- approved or changes_requested
    verdict text not null,
    reviewer text not null,
    reasons jsonb not null default '[]'::jsonb,
    created_at timestamptz not null default now(),
    seq bigint generated always as identity,
    constraint gate_reviews_pk primary key (id),
    constraint gate_reviews_verdict_check check (verdict in ('approved', 'changes_requested')),
    constraint gate_reviews_ticket_fk foreign key (ticket_id) references tickets (id) on delete cascade
);

create index gate_reviews_ticket_phase_idx on gate_reviews (ticket_id, phase_id, seq);

-- A review that requests changes generates a rework task in its phase, one per such review:
-- a visit's generated tasks stay unique by type, rework tasks by the review that asked for them.
alter table tasks add column rework_of uuid references gate_reviews (id) on delete set null;
alter table tasks drop constraint tasks_visit_type_unique;
create unique index tasks_visit_type_unique on tasks (ticket_id, visit_history_id, phase_id, task_type)
    where rework_of is null;
create unique index tasks_rework_unique on tasks (rework_of) where rework_of is not null;

-- Overrides: an operator may force a transition its gate refuses; the move says so.
alter table phase_history add column forced boolean not null default false;

-- the stored gate result of a forced move (usable once this migration has committed)
alter type gate_status add value if not exists 'overridden';
