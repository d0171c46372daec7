-- Claims and leases: an agent claims a pending task and holds it for a lease it may extend by
-- heartbeats; a lease that runs out returns the task to pending (or fails it after
-- `tasks.max_attempts` expiries). `in_progress` was never written; it becomes `claimed`.
alter type task_status rename value 'in_progress' to 'claimed';

alter table tasks
    -- the agent holding the task while it is claimed; once finished, the agent that reported it
    add column claimed_by text,
    -- when the current lease runs out (null unless claimed)
    add column lease_expires_at timestamptz,
    -- the length of the current lease, which a heartbeat renews unless it names another
    add column lease_seconds integer,
    -- claims so far (1 for the first)
    add column attempt integer not null default 0,
    -- leases that ran out
    add column expiries integer not null default 0;

-- the sweep finds leases that ran out
create index tasks_lease_expiry_idx on tasks (lease_expires_at) where status = 'claimed';
-- a claim without a ticket takes the most urgent, then oldest, pending task of any ticket
create index tasks_pending_next_idx on tasks (priority desc, seq) where status = 'pending';
