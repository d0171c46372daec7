-- Agents as records: who they are, the roles that decide which tasks they may claim, how many
-- live leases they may hold, whether they are operators, and their bearer tokens, stored only as
-- SHA-256 hashes (a token is a long random secret, shown once when it is issued).
create table agents (
    agent_id text primary key check (agent_id ~ '^[a-z0-9._-]{1,64}$'),
    -- role names; '*' is every role
    roles text[] not null default '{}',
    -- live leases it may hold at once; null: agents.default_max_claims
    max_claims integer check (max_claims >= 1),
    operator boolean not null default false,
    -- its daily budget in US dollars; null: none
    daily_cost_usd numeric check (daily_cost_usd >= 0),
    created_at timestamptz not null default now(),
    created_by text not null,
    -- the latest request it was seen making (written at most every few seconds)
    last_seen_at timestamptz
);

create table agent_tokens (
    token_hash bytea primary key,
    agent_id text not null references agents (agent_id) on delete cascade,
    issued_at timestamptz not null default now(),
    issued_by text not null,
    revoked_at timestamptz,
    revoked_by text
);
create index agent_tokens_agent_idx on agent_tokens (agent_id);

-- What was done to agents and by whom (registration, tokens issued and revoked), for the board.
create table agent_record (
    id bigserial primary key,
    agent_id text not null,
    action text not null,
    actor text not null,
    at timestamptz not null default now()
);
create index agent_record_agent_idx on agent_record (agent_id, id);

-- Each task may need a role of the agent that claims it (null: any agent).
alter table tasks add column role text;

-- Progress of the live claim: the last progress a heartbeat reported (null: none since the
-- claim), when the task last made progress (the claim counts), and when its stall was reported
-- (once per claim).
alter table tasks
    add column last_progress jsonb,
    add column last_progress_at timestamptz,
    add column stalled_at timestamptz;
create index tasks_progress_idx on tasks (last_progress_at) where status = 'claimed';
