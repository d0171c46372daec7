// The operations page: every replica as it last reported itself, the queues, the outbox,
// lease expiries, the dead letters (with a Replay button for operators) and the latest
// replays. The figures refresh every 5 s; the dead letters are listed only when needed (see
// `load`), because each listing counts as a delivery in RabbitMQ.

import { api, ApiError, isQuiet } from "../api.js";
import { flash, flashError } from "../flash.js";
import { badge } from "../lib/badges.js";
import { el, emptyNote, fill, keepFocus, panel } from "../lib/dom.js";
import { prettyJson, qs, shortId } from "../lib/text.js";
import { fmtDuration, timeEl } from "../lib/time.js";
import { ticketHref } from "../router.js";
import { isOperator } from "../session.js";
import { setLiveStatus } from "../stream.js";

const OPS_REFRESH_MS = 5000; // auto refresh

export function renderOperations(page, main) {
  document.title = "Operations · phaseflow";
  setLiveStatus("polling");
  const operator = isOperator();

  const refresh = el("button", { id: "refresh", type: "button", class: "btn" }, "Refresh");
  const updated = el("p", { class: "help" });
  const ui = {
    replicas: el("table", { id: "replicas", class: "data-table" }),
    queues: el("div", { id: "queues", class: "stats" }),
    outbox: el("div", { id: "outbox", class: "stats" }),
    leases: el("p", { class: "help" }),
    expiries: el("div", { id: "expiries", class: "table-wrap" }),
    replays: el("div", { id: "replays", class: "table-wrap" }),
    deadCount: el("p", { class: "help" }),
    deadLetters: el("div", { id: "dead-letters", class: "dead-letters" }),
  };
  const root = el("div", { class: "ops-page", "aria-busy": "true" });
  root.append(
    el("div", { class: "page-head" },
      el("h1", { tabindex: "-1" }, "Operations"),
      el("div", { class: "page-actions" }, updated, refresh)),
    el("div", { class: "ops-grid" },
      panel("Replicas", el("div", { class: "table-wrap" }, ui.replicas), "span-2"),
      panel("Queues", ui.queues),
      panel("Outbox", ui.outbox),
      panel("Lease expiries", [ui.leases, ui.expiries], "span-2"),
      panel("Dead letters", [ui.deadCount, ui.deadLetters], "span-2"),
      panel("Replays by operators", [ui.replays], "span-2")));
  main.append(root);

  let deadTotal = 0;
  const replaying = new Set(); // message ids with a replay in flight: not re-rendered meanwhile

  const stat = (label, value, extra, attrs) =>
    el("div", Object.assign({ class: "stat" }, attrs || {}),
      el("span", { class: "stat-label" }, label),
      el("span", { class: ["stat-value", extra] }, value));

  function renderReplicas(replicas) {
    const head = el("thead", null, el("tr", null,
      ["Replica", "Kind", "Host", "Ready", "In flight", "Handled", "Started", "Last seen", "State"].map((h) => el("th", { scope: "col" }, h))));
    const body = el("tbody", null, replicas.map((r) => el("tr", { class: r.stale ? "stale" : null, "data-replica-id": r.replica_id },
      el("td", null, el("code", null, r.replica_id)),
      el("td", null, r.kind),
      el("td", null, r.host),
      el("td", null, r.ready ? badge("ready", ["ok"]) : badge("not ready", ["warn"])),
      el("td", { class: "num" }, String(r.in_flight)),
      el("td", { class: "num" }, Number(r.handled).toLocaleString()),
      el("td", null, timeEl(r.started_at, "ago")),
      el("td", null, timeEl(r.last_seen_at, "ago")),
      el("td", null, r.stale ? badge("stale", ["bad"]) : badge("fresh", ["ok"])))));
    if (!replicas.length) body.append(el("tr", null, el("td", { colspan: 9 }, emptyNote("No replicas have reported."))));
    ui.replicas.replaceChildren(el("caption", { class: "sr-only" }, "Replicas"), head, body);
  }

  function renderQueues(queues) {
    const one = (key, label, q) => stat(label + (q && q.name ? " (" + q.name + ")" : ""),
      q ? Number(q.messages).toLocaleString() : "—", "depth", { "data-queue": key });
    const consumers = (q) => (q ? el("span", { class: "help" }, q.consumers + (q.consumers === 1 ? " consumer" : " consumers")) : null);
    const requests = one("requests", "Requests", queues.requests);
    if (queues.requests) requests.append(consumers(queues.requests));
    const dead = one("dead_letter", "Dead letters", queues.dead_letter);
    if (queues.dead_letter) dead.append(consumers(queues.dead_letter));
    fill(ui.queues, requests, dead,
      queues.reachable === false || queues.error
        ? el("p", { class: "form-error span-all" }, "RabbitMQ cannot be asked: " + (queues.error || "unreachable"))
        : null);
  }

  function renderOutbox(outbox, leases) {
    ui.outbox.replaceChildren(
      stat("Backlog", Number(outbox.backlog || 0).toLocaleString(), "outbox-backlog"),
      stat("Oldest waiting", outbox.oldest_age_seconds === null || outbox.oldest_age_seconds === undefined
        ? "nothing waiting" : fmtDuration(outbox.oldest_age_seconds), "outbox-age"),
      stat("Live leases", String((leases && leases.live) || 0), "leases-live"));
  }

  function renderExpiries(leases) {
    const expiries = (leases && leases.recent_expiries) || [];
    ui.leases.textContent = "Claims whose lease ran out without a heartbeat, newest first as reported.";
    if (!expiries.length) {
      ui.expiries.replaceChildren(emptyNote("No recent lease expiries."));
      return;
    }
    ui.expiries.replaceChildren(el("table", { class: "data-table" },
      el("caption", { class: "sr-only" }, "Recent lease expiries"),
      el("thead", null, el("tr", null, ["Ticket", "Task", "Claimed by", "Attempt", "Expired", "Outcome"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", null, expiries.map((x) => el("tr", { class: "expiry", "data-task-id": x.task_id },
        el("td", null, el("a", { href: ticketHref(x.ticket_id) }, shortId(x.ticket_id))),
        el("td", null, x.task_type || shortId(x.task_id)),
        el("td", null, x.claimed_by),
        el("td", { class: "num" }, String(x.attempt)),
        el("td", null, timeEl(x.expired_at, "ago")),
        // `failed`: the expiry used up the task's attempts and failed it; else it is pending again
        el("td", null, x.failed ? badge("task failed", ["bad"]) : badge("pending again", ["status-pending"])))))));
  }

  // The latest replays of dead letters, newest first: who replayed what, and why it had failed.
  function renderReplays(replays) {
    if (!replays.length) {
      ui.replays.replaceChildren(emptyNote("No dead letter has been replayed."));
      return;
    }
    ui.replays.replaceChildren(el("table", { class: "data-table" },
      el("caption", { class: "sr-only" }, "Replays of dead letters by operators"),
      el("thead", null, el("tr", null, ["Message", "Routing key", "Why it had failed", "Replayed by", "When"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", null, replays.map((r) => el("tr", { class: "replay", "data-message-id": r.message_id },
        el("td", null, el("code", null, r.message_id)),
        el("td", null, el("code", null, r.routing_key)),
        el("td", null, r.reason || "—"),
        el("td", null, r.replayed_by),
        el("td", null, timeEl(r.replayed_at, "ago")))))));
  }

  function updateDeadCount(shown) {
    ui.deadCount.textContent = deadTotal.toLocaleString() + (deadTotal === 1 ? " message" : " messages") +
      " in the dead-letter queue" + (shown < deadTotal ? ", the oldest " + shown + " shown" : "") + ".";
  }

  // One dead letter: ids, reason, routing key, headers as a <dl>, body as text, Replay.
  function buildDeadLetter(d) {
    const id = d.message_id || "";
    const headers = Object.entries(d.headers || {});
    const article = el("article", { class: "dead-letter", "data-message-id": id, "data-key": id || null },
      el("div", { class: "entry-head" },
        el("h3", { class: "message-id" }, id || "(no message id)"),
        d.type ? badge(d.type, ["kind-badge", "type"]) : null),
      el("dl", { class: "meta" },
        el("dt", null, "Reason"), el("dd", { class: "reason" }, d.reason || "—"),
        el("dt", null, "Routing key"), el("dd", null, el("code", { class: "routing-key" }, d.routing_key || "—")),
        el("dt", null, "Type"), el("dd", null, d.type || "—"),
        el("dt", null, "Size"), el("dd", null, Number(d.body_bytes || 0).toLocaleString() + " bytes")),
      el("h4", null, "Headers"),
      headers.length
        ? el("dl", { class: "headers" }, headers.map(([name, value]) =>
          [el("dt", null, name), el("dd", null, typeof value === "string" ? value : prettyJson(value))]))
        : el("p", { class: "headers empty-note" }, "No headers."),
      el("h4", null, "Body"),
      el("pre", { class: "pre body" }, d.body || ""));
    if (operator) {
      const button = el("button", { type: "button", class: "btn btn-primary replay", disabled: !id }, "Replay");
      if (!id) button.title = "A message without an id cannot be replayed";
      button.addEventListener("click", () => replay(id, article, button));
      article.append(el("div", { class: "button-row" }, button));
    }
    return article;
  }

  function renderDeadLetters(answer) {
    const letters = (answer.dead_letters || []).filter((d) => !replaying.has(d.message_id));
    deadTotal = typeof answer.total === "number" ? answer.total : letters.length;
    updateDeadCount(letters.length);
    keepFocus(ui.deadLetters, () => {
      ui.deadLetters.replaceChildren(...(letters.length ? letters.map(buildDeadLetter) : [emptyNote("The dead-letter queue is empty.")]));
    });
  }

  // Replay: POST, then the entry disappears and the flash says so.
  async function replay(id, article, button) {
    button.disabled = true;
    button.textContent = "Replaying…";
    replaying.add(id);
    try {
      const res = await api("/api/v1/dead-letters/" + encodeURIComponent(id) + "/replay", {
        method: "POST", body: {}, signal: page.signal,
      });
      removeDeadLetter(article);
      flash("ok", "replayed " + ((res && res.message_id) || id));
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) removeDeadLetter(article);
      else { button.disabled = false; button.textContent = "Replay"; }
      flashError(err, "Replay failed");
    } finally {
      replaying.delete(id);
    }
  }

  function removeDeadLetter(article) {
    // Keep keyboard focus nearby: the next entry's Replay button, else the section.
    const next = article.nextElementSibling || article.previousElementSibling;
    const hadFocus = article.contains(document.activeElement);
    article.remove();
    deadTotal = Math.max(0, deadTotal - 1);
    const shown = ui.deadLetters.querySelectorAll("article.dead-letter").length;
    updateDeadCount(shown);
    if (!shown) ui.deadLetters.replaceChildren(emptyNote("The dead-letter queue is empty."));
    if (hadFocus) {
      const target = next && next.querySelector("button.replay");
      if (target && !target.disabled) target.focus();
      else refresh.focus();
    }
  }

  // The figures are read every OPS_REFRESH_MS; the dead letters only when the page opens, on
  // Refresh, and when the dead-letter queue's depth changed since they were listed: reading
  // them takes them off the queue and puts them back, which RabbitMQ counts as a delivery.
  // Each section shows its own failure.
  let loading = false;
  let listedDepth; // the dead-letter queue's depth when the dead letters were last listed
  async function load(withDeadLetters) {
    if (loading) return;
    loading = true;
    root.setAttribute("aria-busy", "true");
    let depthChanged = false;
    try {
      // one after the other: while a listing holds the dead letters, RabbitMQ does not count
      // them in the queue's depth
      const [ops] = await Promise.allSettled([api("/api/v1/operations", { signal: page.signal })]);
      const [dead] = await Promise.allSettled([
        withDeadLetters
          ? api("/api/v1/dead-letters?" + qs({ limit: 50 }), { signal: page.signal })
          : Promise.resolve(null),
      ]);
      if (page.signal.aborted) return;
      if (ops.status === "fulfilled") {
        const o = ops.value;
        renderReplicas(o.replicas || []);
        renderQueues(o.queues || {});
        renderOutbox(o.outbox || {}, o.leases);
        renderExpiries(o.leases);
        renderReplays(o.recent_replays || []);
        const queue = o.queues && o.queues.dead_letter;
        const depth = queue ? queue.messages : null;
        depthChanged = !withDeadLetters && listedDepth !== undefined && depth !== listedDepth;
      } else {
        flashError(ops.reason, "Loading operations failed");
      }
      if (withDeadLetters) {
        if (dead.status === "fulfilled") {
          renderDeadLetters(dead.value);
          listedDepth = dead.value.total === undefined ? null : dead.value.total;
        } else if (!isQuiet(dead.reason)) {
          ui.deadLetters.replaceChildren(el("p", { class: "form-error" }, "The dead letters could not be read: " + dead.reason.message));
        }
      }
      updated.replaceChildren("updated ", timeEl(new Date().toISOString(), "ago"));
    } finally {
      loading = false;
      root.removeAttribute("aria-busy");
    }
    if (depthChanged) load(true);
  }

  refresh.addEventListener("click", () => load(true));
  load(true);
  page.setInterval(() => load(false), OPS_REFRESH_MS);
}
