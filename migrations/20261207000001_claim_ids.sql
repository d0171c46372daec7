-- Each claim of a task gets an id of its own, which `task.claimed` publishes and later requests
-- about the task may quote: a heartbeat, release or report quoting a claim that is no longer the
-- task's live one (its lease ran out, the task was released or claimed again) is refused. The
-- column keeps the latest claim's id after the task is released, expires or is reported, so an
-- old claim is told from the live one by the task's status and lease as well as by its id.
alter table tasks add column claim_id uuid;
