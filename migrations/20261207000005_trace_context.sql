-- W3C trace context of each event still to publish: the relay sends it as the event's AMQP
-- headers `traceparent` and `tracestate` (the body carries it as CloudEvents attributes).
alter table outbox
    add column traceparent text,
    add column tracestate text;
