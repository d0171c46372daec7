-- The board: what the people supervising the agents see of a ticket's past and of the running
-- replicas, beyond what the workflow itself needs.

-- the correlation id of the request that made the move (null on rows written before it was kept,
-- and when the request named none)
alter table phase_history add column correlation_id text;

-- One row per lease that ran out, written by the sweep that expired it, for the operations page.
-- Rows older than a week are deleted by the sweep.
create table lease_expiries (
    id bigint generated always as identity,
    ticket_id uuid not null,
    task_id uuid not null,
    task_type text not null,
    claimed_by text not null,
    -- the claim that ran out (1 for the first)
    attempt integer not null,
    -- whether this expiry failed the task (its attempts were used up)
    failed boolean not null,
    expired_at timestamptz not null default now(),
    constraint lease_expiries_pk primary key (id),
    constraint lease_expiries_ticket_fk foreign key (ticket_id) references tickets (id) on delete cascade
);

create index lease_expiries_expired_at_idx on lease_expiries (expired_at);

-- The running processes, each reporting itself every few seconds (`worker.replica_report_ms`):
-- the operations page lists them, and a row not refreshed for a day is deleted by the next
-- report of any replica.
create table replicas (
    replica_id text not null,
    -- worker or api
    kind text not null,
    host text not null,
    pid integer not null,
    started_at timestamptz not null,
    last_seen_at timestamptz not null default now(),
    ready boolean not null,
    -- messages being applied at the last report (workers) or requests being served (API)
    in_flight bigint not null,
    -- messages (workers) or requests (API) finished since the process started
    handled bigint not null,
    constraint replicas_pk primary key (replica_id),
    constraint replicas_kind_check check (kind in ('worker', 'api'))
);
