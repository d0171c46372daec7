// A ticket's page: its header, and for operators a form that forces a transition (with a
// reason); the live events about it; its tasks (ticket-tasks.js); its usage against its budget,
// gates, timeline, artifacts and context (ticket-sections.js). Every part reloads, debounced, on each live event
// about the ticket; a part that fails to load shows its own error.

import { api, ApiError, isQuiet } from "../api.js";
import { flash, flashError } from "../flash.js";
import { badge, priorityBadge } from "../lib/badges.js";
import { el, emptyNote, fill, panel } from "../lib/dom.js";
import { qs } from "../lib/text.js";
import { timeEl } from "../lib/time.js";
import { isOperator } from "../session.js";
import { openStream } from "../stream.js";
import { phaseBadge, phaseName } from "../workflow.js";
import { tasksTable } from "./ticket-tasks.js";
import {
  renderArtifacts, renderContext, renderGates, renderTimeline, renderUsage, sectionError,
} from "./ticket-sections.js";

const TICKET_RELOAD_MS = 250; // debounce of reloads on live events
const LIVE_EVENTS_MAX = 100; // live events kept in the list

export function renderTicket(page, main, ticketId) {
  document.title = "Ticket · phaseflow";
  const operator = isOperator();
  const enc = encodeURIComponent(ticketId);

  // Containers the loads fill; the ids are what the browser tests look for.
  const ui = {
    title: el("h1", { id: "ticket-title", tabindex: "-1" }, "Loading ticket…"),
    phase: el("span", { id: "ticket-phase", class: "ticket-phase" }),
    priority: el("span", { id: "ticket-priority", class: "ticket-priority" }),
    meta: el("div", { class: "ticket-meta" }),
    description: el("p", { id: "ticket-description", class: "description" }),
    gates: el("div", { id: "gates", class: "gates" }),
    timeline: el("ol", { id: "timeline", class: "timeline" }),
    live: el("ul", { id: "live-events", class: "live-events" }),
    liveEmpty: emptyNote("No events since this page opened."),
    artifacts: el("div", { id: "artifacts", class: "artifacts" }),
    usage: el("div", { id: "usage", class: "usage" }),
    summary: el("pre", { id: "context-summary", class: "pre" }),
    summaryMeta: el("p", { class: "help" }),
    context: el("div", { id: "context", class: "context" }),
  };
  const root = el("div", { class: "ticket-page", "aria-busy": "true" });
  const tasks = tasksTable(page, operator, () => load());

  // Operators: force a transition to one of the ticket's valid transitions.
  let force = null;
  if (operator) {
    force = {
      select: el("select", { id: "force-to-phase", required: true }),
      note: el("p", { id: "force-note", class: "help" }),
      reason: el("input", { id: "force-reason", type: "text", required: true, autocomplete: "off", maxlength: "10000" }),
      submit: el("button", { type: "submit", class: "btn btn-danger" }, "Force transition"),
      transitions: [],
    };
    force.select.setAttribute("aria-describedby", "force-note");
    force.select.addEventListener("change", updateForceNote);
    force.form = el("form", { id: "force-transition", class: "stack" },
      el("div", { class: "field" }, el("label", { for: "force-to-phase" }, "Move to phase"), force.select, force.note),
      el("div", { class: "field" }, el("label", { for: "force-reason" }, "Reason (kept in the history)"), force.reason),
      el("div", null, force.submit));
    force.form.addEventListener("submit", submitForce);
  }

  root.append(
    el("nav", { class: "breadcrumb", "aria-label": "Breadcrumb" }, el("a", { href: "#/board" }, "← Board")),
    el("header", { class: "panel ticket-head" },
      ui.title,
      el("div", { class: "ticket-badges" },
        el("span", { class: "label-pair" }, el("span", { class: "label" }, "Phase"), ui.phase),
        el("span", { class: "label-pair" }, el("span", { class: "label" }, "Priority"), ui.priority)),
      ui.meta,
      ui.description),
    el("div", { class: "ticket-grid" },
      operator ? panel("Actions", force.form) : null,
      panel("Live events", [ui.liveEmpty, ui.live]),
      panel("Tasks", el("div", { class: "table-wrap" }, tasks.table), "span-2"),
      panel("Usage", ui.usage, "span-2"),
      panel("Gates", ui.gates),
      panel("Timeline", ui.timeline),
      panel("Artifacts", ui.artifacts),
      panel("Context", [el("h3", null, "Summary"), ui.summaryMeta, ui.summary, el("h3", null, "Full context by phase"), ui.context])));
  main.append(root);

  // Header: title, phase, priority, description.
  function renderHeader(ticket) {
    document.title = ticket.title + " · phaseflow";
    ui.title.textContent = ticket.title;
    ui.phase.replaceChildren(phaseBadge(ticket.phase_id), " ", el("code", { class: "phase-id" }, ticket.phase_id));
    ui.priority.replaceChildren(priorityBadge(ticket.priority));
    fill(ui.meta,
      el("span", null, "created ", timeEl(ticket.created_at, "ago")),
      el("span", null, "updated ", timeEl(ticket.updated_at, "ago")),
      ticket.previous_phase_id ? el("span", null, "came from ", phaseName(ticket.previous_phase_id)) : null,
      el("span", null, ticket.auto_advance ? "advances by itself" : "moves only on request"),
      el("span", null, "id ", el("code", null, ticket.id)));
    ui.description.textContent = ticket.description || "No description.";
    ui.description.classList.toggle("muted", !ticket.description);
    if (force) renderForceOptions(ticket.valid_transitions || []);
  }

  // Force form: options from valid_transitions, keeping the choice across reloads.
  function renderForceOptions(transitions) {
    const previous = force.select.value;
    force.transitions = transitions;
    force.select.replaceChildren(...transitions.map((t) =>
      el("option", { value: t.to_phase },
        phaseName(t.to_phase) + (t.gated ? " (gated)" : "") + (t.allowed_now ? "" : " · not allowed now"))));
    if (transitions.some((t) => t.to_phase === previous)) force.select.value = previous;
    const none = transitions.length === 0;
    force.select.disabled = none;
    force.submit.disabled = none;
    if (none) force.select.append(el("option", { value: "" }, "no transitions from this phase"));
    updateForceNote();
  }

  function updateForceNote() {
    const t = force.transitions.find((x) => x.to_phase === force.select.value);
    if (!t) {
      force.note.textContent = force.transitions.length ? "" : "This phase has no way out.";
      return;
    }
    const reasons = (t.reasons || []).join("; ");
    force.note.textContent = t.allowed_now
      ? "Allowed now" + (reasons ? ": " + reasons : ".")
      : "Not allowed now" + (reasons ? ": " + reasons : "") + ". Forcing records an override.";
  }

  async function submitForce(event) {
    event.preventDefault();
    const reason = force.reason.value.trim();
    if (!force.select.value || !reason) {
      flash("error", "Choose a phase and give a reason.");
      (reason ? force.select : force.reason).focus();
      return;
    }
    force.submit.disabled = true;
    force.form.setAttribute("aria-busy", "true");
    try {
      const res = await api("/api/v1/tickets/" + enc + "/transition", {
        method: "POST", body: { to_phase: force.select.value, reason, force: true }, signal: page.signal,
      });
      flash("ok", "Moved from " + phaseName(res.previous_phase) + " to " + phaseName(res.current_phase) + " (forced).");
      force.reason.value = "";
      load();
    } catch (err) {
      flashError(err, "The transition was refused");
    } finally {
      force.submit.disabled = false;
      force.form.removeAttribute("aria-busy");
    }
  }

  function renderMissing(err) {
    root.replaceChildren(el("div", { class: "panel notice" },
      el("h1", { id: "ticket-title", tabindex: "-1" }, "Ticket not found"),
      el("p", null, err.message),
      el("p", null, el("a", { href: "#/board" }, "Back to the board"))));
  }

  // Loads everything; a failing part shows its own error, a missing ticket replaces the page.
  let loading = false;
  let again = false;
  let reloadTimer = 0;
  async function load() {
    if (loading) { again = true; return; }
    loading = true;
    root.setAttribute("aria-busy", "true");
    try {
      const get = (path) => api(path, { signal: page.signal });
      const [ticket, timeline, taskList, gates, artifacts, context, usage] = await Promise.allSettled([
        get("/api/v1/tickets/" + enc),
        get("/api/v1/board/tickets/" + enc + "/timeline"),
        get("/api/v1/tasks?" + qs({ ticket_id: ticketId, limit: 200 })),
        get("/api/v1/tickets/" + enc + "/gates"),
        get("/api/v1/tickets/" + enc + "/artifacts"),
        get("/api/v1/tickets/" + enc + "/context"),
        get("/api/v1/tickets/" + enc + "/usage"),
      ]);
      if (page.signal.aborted) return;
      if (ticket.status === "rejected") {
        const err = ticket.reason;
        if (isQuiet(err)) return;
        if (err instanceof ApiError && (err.status === 404 || err.status === 422)) { renderMissing(err); return; }
        flashError(err, "Loading the ticket failed");
        return;
      }
      renderHeader(ticket.value);
      if (timeline.status === "fulfilled") renderTimeline(ui.timeline, timeline.value.entries || []);
      else sectionError(ui.timeline, timeline.reason);
      if (taskList.status === "fulfilled") tasks.render(taskList.value.tasks || []);
      else sectionError(tasks.table, taskList.reason);
      if (usage.status === "fulfilled") renderUsage(ui.usage, usage.value);
      else sectionError(ui.usage, usage.reason);
      if (gates.status === "fulfilled") renderGates(ui.gates, gates.value);
      else sectionError(ui.gates, gates.reason);
      if (artifacts.status === "fulfilled") renderArtifacts(ui.artifacts, artifacts.value.artifacts || []);
      else sectionError(ui.artifacts, artifacts.reason);
      if (context.status === "fulfilled") renderContext(ui, context.value);
      else if (context.reason instanceof ApiError && context.reason.status === 404) renderContext(ui, {});
      else sectionError(ui.context, context.reason);
    } finally {
      loading = false;
      root.removeAttribute("aria-busy");
      if (again && !page.signal.aborted) { again = false; load(); }
    }
  }

  function scheduleReload() {
    page.clearTimeout(reloadTimer);
    reloadTimer = page.setTimeout(load, TICKET_RELOAD_MS);
  }

  // A live event about this ticket: list it and reload (debounced).
  function onEvent(event) {
    if (event.subject && event.subject !== ticketId) return;
    ui.liveEmpty.hidden = true;
    ui.live.prepend(el("li", { class: "live-event", "data-type": event.type },
      el("div", { class: "entry-head" },
        badge(event.type || "event", ["kind-badge"]),
        event.time ? timeEl(event.time, null) : null),
      el("p", null, el("span", { class: "label" }, "by "), event.actor || "—"),
      event.correlationid ? el("p", { class: "correlation" }, el("span", { class: "label" }, "correlation "), el("code", null, event.correlationid)) : null));
    while (ui.live.children.length > LIVE_EVENTS_MAX) ui.live.lastElementChild.remove();
    scheduleReload();
  }

  load();
  openStream(page, { ticketId, onEvent, onReload: scheduleReload });
}
