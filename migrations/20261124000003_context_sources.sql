-- Per phase key, a fingerprint of what that phase's context was aggregated from (its completed
-- tasks, artifacts and gate results). Re-entering phases re-aggregates the phase just left;
-- when its fingerprint is unchanged the stored context and summary stand, so the cost of a
-- transition does not grow with the artifacts a phase has collected.
alter table tickets add column context_sources jsonb not null default '{}'::jsonb;

-- cl100k_base tokens of context_summary, so an unchanged summary is not counted again
alter table tickets add column context_summary_tokens integer not null default 0;
