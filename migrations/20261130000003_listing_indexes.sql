-- Listings page through tickets and tasks by keyset, so each page is one index range read from
-- where the previous page ended.

-- GET /api/v1/tickets: most recently updated first, ties by id, paged on (updated_at, id),
-- optionally of one phase or one priority (read backwards: newest first).
create index tickets_updated_idx on tickets (updated_at, id);
create index tickets_phase_updated_idx on tickets (phase_id, updated_at, id);
create index tickets_priority_updated_idx on tickets (priority, updated_at, id);

-- GET /api/v1/tasks: in creation order (seq), optionally of one status or one task type; the
-- tasks of one ticket are found by tasks_ticket_phase_idx. `claimable=true` reads the pending
-- tasks in seq order through tasks_status_seq_idx.
create index tasks_seq_idx on tasks (seq);
create index tasks_status_seq_idx on tasks (status, seq);
create index tasks_type_seq_idx on tasks (task_type, seq);
