-- What agents' work cost, as they report it with heartbeats and task reports: one row per
-- applied request, so a request counts once however often it is delivered, and totals by task,
-- phase, ticket and agent are sums of rows.
create table task_usage (
    -- the reporting request's id
    request_id text primary key,
    ticket_id uuid not null,
    task_id uuid not null,
    phase_id phase not null,
    agent text not null,
    input_tokens bigint not null check (input_tokens >= 0),
    output_tokens bigint not null check (output_tokens >= 0),
    cost_usd numeric not null check (cost_usd >= 0),
    recorded_at timestamptz not null default now()
);
create index task_usage_ticket_idx on task_usage (ticket_id);
create index task_usage_task_idx on task_usage (task_id);
create index task_usage_agent_idx on task_usage (agent, recorded_at);
