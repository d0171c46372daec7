-- Whether the work that entering a phase sets off (the visit's tasks, the context of the phase
-- left) has been done for this visit. The worker does it in the transaction that records the
-- visit, so new rows are true; a visit recorded by another system may be false until a
-- `phase.entered` about it is consumed. Rows written before this column had their work done.
alter table phase_history add column entry_work_done boolean not null default true;
