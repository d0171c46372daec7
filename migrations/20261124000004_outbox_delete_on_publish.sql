-- The relay deletes events once the broker confirmed them, so the outbox holds only what is
-- still to be published: an event costs one insert and one delete, and the table and its two
-- indexes stay as small as the backlog. Published events are on the broker, with their
-- consumers; the history of a ticket is in phase_history.
delete from outbox where published_at is not null;

drop index outbox_unpublished_idx;
drop index outbox_unpublished_ticket_idx;
drop index outbox_published_at_idx;

alter table outbox drop column published_at;

-- A queue table: every event leaves a dead row. The relay vacuums it every
-- outbox.vacuum_interval_ms; where autovacuum runs, it also comes after every thousand rows
-- rather than after a fifth of the table.
alter table outbox set (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
