-- The trace id (32 hex digits) of the request, sweep or stall check that wrote each row a
-- ticket's timeline shows, so that every timeline entry names its trace. Rows written before
-- the column existed keep null.
alter table phase_history add column trace_id text;
alter table tasks
    add column trace_id text,
    add column claim_trace_id text,
    add column finish_trace_id text;
alter table phase_gate_artifacts add column trace_id text;
alter table phase_gate_results add column trace_id text;
alter table gate_reviews add column trace_id text;
