-- The outbox keeps each event as the bytes the relay publishes, not as jsonb: the worker
-- serialises an event once, Postgres stores and returns it without parsing it, and the relay
-- publishes it as read. The body is the CloudEvent without `ticketseq`; the relay adds the row's
-- `ticket_seq` as the object's first member when it publishes.
alter table outbox add column body bytea;

update outbox set body = convert_to((payload - 'ticketseq')::text, 'UTF8');

alter table outbox alter column body set not null;
alter table outbox drop column payload;
