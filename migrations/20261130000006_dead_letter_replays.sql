-- Dead letters an operator replayed through the API (the board's Replay button): who, when, and
-- what the message was, so that the operations page and an audit can tell. Written by the API
-- once the broker confirmed the replayed copy. Rows older than 90 days are deleted by the replica
-- reports, a few at a time.
create table dead_letter_replays (
    id bigint generated always as identity,
    message_id text not null,
    routing_key text not null,
    -- why the message had been dead-lettered (x-phaseflow-error), when it said
    reason text,
    replayed_by text not null,
    replayed_at timestamptz not null default now(),
    constraint dead_letter_replays_pk primary key (id)
);

create index dead_letter_replays_replayed_at_idx on dead_letter_replays (replayed_at);
