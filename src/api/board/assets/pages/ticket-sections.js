// The parts of a ticket's page that show what the API answered, each into its own container:
// gates and reviews, the timeline, the artifacts, the context and the usage. Agent input
// (reasons, summaries, artifact content, agent ids, task types) goes into text nodes only.

import { badge, gateBadge } from "../lib/badges.js";
import { el, emptyNote } from "../lib/dom.js";
import { prettyJson, shortId } from "../lib/text.js";
import { timeEl } from "../lib/time.js";
import { phaseBadge, phaseName, phaseRank } from "../workflow.js";
import { fmtTokens, fmtUsd, spendMeter } from "./board.js";

// Gates: results (status, blocking reasons, missing artifacts) and reviews (verdict, reasons).
export function renderGates(container, gates) {
  const results = gates.results || [];
  const reviews = gates.reviews || [];
  const list = (items, cls) => el("ul", { class: cls }, items.map((x) => el("li", null, String(x))));
  container.replaceChildren(
    el("h3", null, "Results"),
    results.length ? el("ul", { class: "gate-results" }, results.map((r) => el("li", { class: "gate-result", "data-phase": r.phase_id },
      el("div", { class: "entry-head" },
        phaseBadge(r.phase_id), gateBadge(r.gate_status),
        el("span", { class: "muted" }, r.requirements_met ? "requirements met" : "requirements not met")),
      el("p", { class: "help" }, "validated by ", r.validated_by || "—", " · ", timeEl(r.validated_at, "ago")),
      (r.missing_artifacts || []).length ? [el("p", { class: "sub" }, "Missing artifacts"), list(r.missing_artifacts, "missing-artifacts")] : null,
      (r.blocking_reasons || []).length ? [el("p", { class: "sub" }, "Blocking reasons"), list(r.blocking_reasons, "blocking-reasons")] : null)))
      : emptyNote("No gate results yet."),
    el("h3", null, "Reviews"),
    reviews.length ? el("ul", { class: "reviews" }, reviews.map((r) => el("li", { class: "review", "data-phase": r.phase_id },
      el("div", { class: "entry-head" },
        phaseBadge(r.phase_id),
        badge(String(r.verdict).replace(/_/g, " "), ["verdict-" + r.verdict]),
        el("span", { class: "muted" }, "by ", r.reviewer || "—", " · ", timeEl(r.reviewed_at, "ago"))),
      (r.reasons || []).length ? list(r.reasons, "review-reasons") : null)))
      : emptyNote("No reviews yet."));
}

// Timeline: oldest first, newest last.
export function renderTimeline(list, entries) {
  list.replaceChildren(...entries.map((e) => el("li", { class: "timeline-entry", "data-kind": e.kind },
    el("div", { class: "entry-head" },
      timeEl(e.at, null),
      badge(String(e.kind).replace(/_/g, " "), ["kind-badge", "kind-" + e.kind]),
      e.phase_id ? phaseBadge(e.phase_id) : null,
      e.forced ? badge("forced", ["forced"]) : null),
    el("p", { class: "summary" }, e.summary),
    el("p", { class: "actor" }, el("span", { class: "label" }, "by "), e.actor || "—"),
    e.reason ? el("p", { class: "reason" }, el("span", { class: "label" }, "reason "), e.reason) : null,
    e.correlation_id ? el("p", { class: "correlation" }, el("span", { class: "label" }, "correlation "), el("code", null, e.correlation_id)) : null,
    e.trace_id ? el("p", { class: "trace" }, el("span", { class: "label" }, "trace "), traceId(e)) : null)));
  if (!entries.length) list.append(el("li", { class: "empty-note" }, "Nothing has happened yet."));
}

// A timeline entry's trace id, a link into the tracing backend when the API names one (only an
// http(s) address becomes a link).
function traceId(e) {
  const id = el("code", null, e.trace_id);
  if (!e.trace_url || !/^https?:\/\//i.test(e.trace_url)) return id;
  return el("a", { class: "trace-link", href: e.trace_url, target: "_blank", rel: "noopener noreferrer" }, id);
}

// Artifacts: type, path, collector, time, content as pretty JSON text.
export function renderArtifacts(container, artifacts) {
  if (!artifacts.length) {
    container.replaceChildren(emptyNote("No artifacts yet."));
    return;
  }
  container.replaceChildren(...artifacts.map((a) => el("article", { class: "artifact", "data-type": a.artifact_type },
    el("h3", { class: "artifact-type" }, a.artifact_type),
    el("dl", { class: "meta" },
      el("dt", null, "Phase"), el("dd", null, phaseName(a.phase_id)),
      el("dt", null, "Path"), el("dd", { class: "artifact-path" }, a.artifact_path || "—"),
      el("dt", null, "Collected by"), el("dd", { class: "artifact-collector" }, a.collected_by || "—"),
      el("dt", null, "Collected"), el("dd", null, timeEl(a.collected_at, "ago")),
      a.task_id ? [el("dt", null, "Task"), el("dd", null, el("code", null, shortId(a.task_id)))] : null),
    a.content === null || a.content === undefined
      ? emptyNote("No content.")
      : el("pre", { class: "pre artifact-content" }, prettyJson(a.content)))));
}

// Context: summary, then one <details> per phase (open ones stay open across reloads); `ui`
// holds the three containers: summary (a <pre>), summaryMeta and context.
export function renderContext(ui, context) {
  ui.summary.textContent = context.summary || "No summary yet.";
  ui.summaryMeta.replaceChildren(...(context.last_updated ? ["last updated ", timeEl(context.last_updated, "ago")] : []));
  const open = new Set(Array.from(ui.context.querySelectorAll("details[open]"), (d) => d.getAttribute("data-key")));
  const full = context.full_context && typeof context.full_context === "object" ? context.full_context : {};
  const keys = Object.keys(full).sort((a, b) => phaseRank(a) - phaseRank(b) || a.localeCompare(b));
  if (!keys.length) {
    ui.context.replaceChildren(emptyNote("No context yet."));
    return;
  }
  ui.context.replaceChildren(...keys.map((key) => el("details", { class: "context-phase", "data-key": key, open: open.has(key) },
    el("summary", null, key.replace(/_/g, " ")),
    el("pre", { class: "pre" }, prettyJson(full[key])))));
}

// Usage (GET /api/v1/tickets/{id}/usage): the budget (its limits, who set it last), what was
// spent against each limit and in all, and tables of the spend by phase, agent and task.
export function renderUsage(container, usage) {
  const budget = usage.budget || {};
  const spent = usage.spent || {};
  const has = (x) => x !== null && x !== undefined;
  const meters = [];
  if (has(budget.tokens)) meters.push(spendMeter(spent.tokens || 0, budget.tokens, "tokens"));
  if (has(budget.cost_usd)) meters.push(spendMeter(spent.cost_usd || 0, budget.cost_usd, "cost_usd"));
  const noLimit = () => el("span", { class: "muted" }, "no limit");
  const phases = Object.entries(usage.by_phase || {})
    .sort(([a], [b]) => phaseRank(a) - phaseRank(b) || a.localeCompare(b));
  const agents = Object.entries(usage.by_agent || {}).sort(([a], [b]) => a.localeCompare(b));
  const tasks = Object.entries(usage.by_task || {})
    .sort(([, a], [, b]) => phaseRank(a.phase_id) - phaseRank(b.phase_id) ||
      String(a.task_type).localeCompare(String(b.task_type)));
  container.replaceChildren(
    el("dl", { class: "meta usage-facts" },
      el("dt", null, "Token budget"),
      el("dd", { class: "usage-budget-tokens" }, has(budget.tokens) ? fmtTokens(budget.tokens) + " tokens" : noLimit()),
      el("dt", null, "Cost budget"),
      el("dd", { class: "usage-budget-cost" }, has(budget.cost_usd) ? fmtUsd(budget.cost_usd) : noLimit()),
      el("dt", null, "Budget"),
      el("dd", { class: "usage-budget-set" }, budget.set_by
        ? ["set by ", budget.set_by, " at ", timeEl(budget.set_at, null)]
        : "from creation"),
      el("dt", null, "Spent"),
      el("dd", { class: "usage-spent" }, fmtTokens(spent.tokens) + " tokens (" + fmtTokens(spent.input_tokens) + " in, " +
        fmtTokens(spent.output_tokens) + " out) · " + fmtUsd(spent.cost_usd))),
    meters.length ? el("div", { class: "usage-limits" }, meters) : null,
    ...(tasks.length || agents.length || phases.length
      ? [
        el("h3", null, "By phase"),
        usageTable("usage-by-phase", "Spend by phase", ["Phase"], phases.map(([phase, s]) =>
          usageRow({ "data-phase": phase }, [el("td", { class: "usage-phase" }, phaseName(phase))], s)), spent, 1),
        el("h3", null, "By agent"),
        usageTable("usage-by-agent", "Spend by agent", ["Agent"], agents.map(([agent, s]) =>
          usageRow({ "data-agent-id": agent }, [el("td", { class: "usage-agent" }, el("code", null, agent))], s)), spent, 1),
        el("h3", null, "By task"),
        usageTable("usage-by-task", "Spend by task", ["Task", "Phase"], tasks.map(([task, s]) =>
          usageRow({ "data-task-id": task }, [
            el("td", { class: "usage-task-type" }, el("strong", null, s.task_type)),
            el("td", { class: "usage-phase" }, phaseName(s.phase_id)),
          ], s)), spent, 2),
      ]
      : [emptyNote("No usage reported yet.")]));
}

// A row of a usage table: its label cells, then tokens in, out, both, and the cost.
function usageRow(attrs, labels, s) {
  return el("tr", Object.assign({ class: "usage-row" }, attrs), labels,
    el("td", { class: "num usage-in" }, fmtTokens(s.input_tokens)),
    el("td", { class: "num usage-out" }, fmtTokens(s.output_tokens)),
    el("td", { class: "num usage-tokens" }, fmtTokens(s.tokens)),
    el("td", { class: "num usage-cost" }, fmtUsd(s.cost_usd)));
}

// A usage table with a "Total" row (the ticket's spend) under its rows.
function usageTable(id, caption, labels, rows, total, span) {
  return el("div", { class: "table-wrap" }, el("table", { id, class: "data-table usage-table" },
    el("caption", { class: "sr-only" }, caption),
    el("thead", null, el("tr", null,
      labels.map((h) => el("th", { scope: "col" }, h)),
      ["Tokens in", "Tokens out", "Tokens", "Cost"].map((h) => el("th", { scope: "col", class: "num" }, h)))),
    el("tbody", null, rows),
    el("tfoot", null, usageRow({ class: "usage-total" }, [el("th", { scope: "row", colspan: span }, "Total")], total))));
}

export function sectionError(container, err) {
  container.replaceChildren(el("p", { class: "form-error" }, "Could not load this part: " + (err.message || err)));
}
