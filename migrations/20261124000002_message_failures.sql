-- Failed attempts at processing a message, counted per handler and message id. Only real
-- processing failures count (a bug, a broken invariant, a panic), never a redelivery caused by a
-- worker stopping or losing its connection: an outage must never end in a dead letter.
create table message_failures (
    handler text not null,
    message_id text not null,
    failures integer not null,
    last_error text not null,
    updated_at timestamptz not null default now(),
    constraint message_failures_pk primary key (handler, message_id)
);
