-- Budgets: what a ticket may cost (tokens, US dollars) and what it has cost, kept on the ticket
-- so that a report learns the ticket's new total under the ticket's row lock in the statement
-- that records it; what an agent spent per UTC day, one row each, so that reports of one agent on
-- different tickets add up one after the other; and the alerts published, once per limit value.
alter table tickets
    -- null: no limit
    add column budget_tokens bigint check (budget_tokens > 0),
    add column budget_cost_usd numeric check (budget_cost_usd > 0),
    -- who set the budget last and when (null: given at creation or by the configured default)
    add column budget_set_by text,
    add column budget_set_at timestamptz,
    -- the sums of the ticket's `task_usage` rows
    add column spent_input_tokens bigint not null default 0,
    add column spent_output_tokens bigint not null default 0,
    add column spent_cost_usd numeric not null default 0;

update tickets t set
    spent_input_tokens = u.input_tokens,
    spent_output_tokens = u.output_tokens,
    spent_cost_usd = u.cost_usd
from (
    select ticket_id, sum(input_tokens) as input_tokens, sum(output_tokens) as output_tokens,
           sum(cost_usd) as cost_usd
    from task_usage group by ticket_id
) u
where t.id = u.ticket_id;

-- The spend per UTC day of agents with a daily budget: the sum of their `task_usage` rows recorded
-- that day (counted again from them when an agent is given a daily budget).
create table agent_daily_spend (
    agent text not null,
    day date not null,
    input_tokens bigint not null default 0,
    output_tokens bigint not null default 0,
    cost_usd numeric not null default 0,
    primary key (agent, day)
);

insert into agent_daily_spend (agent, day, input_tokens, output_tokens, cost_usd)
select u.agent, (u.recorded_at at time zone 'UTC')::date, sum(u.input_tokens),
       sum(u.output_tokens), sum(u.cost_usd)
from task_usage u join agents a on a.agent_id = u.agent and a.daily_cost_usd is not null
group by 1, 2;

-- every agent's spend of the day, for the agents listing
create index task_usage_recorded_idx on task_usage (recorded_at);

-- The budget alerts published: one per ticket (or agent and day), limit, level and limit value.
create table budget_alerts (
    id bigint generated always as identity primary key,
    ticket_id uuid,
    agent text,
    day date,
    limit_name text not null check (limit_name in ('tokens', 'cost_usd')),
    level text not null check (level in ('warning', 'exceeded')),
    budget numeric not null,
    spent numeric not null,
    published_at timestamptz not null default now(),
    check ((ticket_id is null) <> (agent is null)),
    unique nulls not distinct (ticket_id, agent, day, limit_name, level, budget)
);
