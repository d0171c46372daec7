// The agents page: every agent (GET /api/v1/agents) with its roles, claim limit, whether it is
// an operator and registered, what it spent today (UTC) against its daily budget, when it was
// last seen, the tasks it finished and its live claims (a stalled one marked, with how long
// since its last progress); below, the latest entries of the record of what operators did to
// agents. For operators, each registered agent has a "Revoke tokens…" control that asks in the
// page (as a claim's "Release…" does) before DELETE /api/v1/agents/{agent_id}/tokens; the page
// then reloads, so the record shows it. The listing refreshes every 5 s; an open confirmation
// survives the refresh.

import { api, isQuiet } from "../api.js";
import { flash, flashError } from "../flash.js";
import { badge } from "../lib/badges.js";
import { el, emptyNote, keepFocus, panel } from "../lib/dom.js";
import { timeEl } from "../lib/time.js";
import { ticketHref } from "../router.js";
import { isOperator } from "../session.js";
import { setLiveStatus } from "../stream.js";
import { fmtTokens, fmtUsd, spendMeter } from "./board.js";

const AGENTS_REFRESH_MS = 5000; // auto refresh (the header says 5 s)

export function renderAgents(page, main) {
  document.title = "Agents · phaseflow";
  setLiveStatus("polling");
  const operator = isOperator();

  const refresh = el("button", { id: "refresh", type: "button", class: "btn" }, "Refresh");
  const updated = el("p", { class: "help" });
  const ui = {
    agents: el("div", { id: "agents", class: "table-wrap" }),
    summary: el("p", { class: "help" }),
    record: el("div", { id: "agent-record", class: "table-wrap" }),
  };
  const root = el("div", { class: "agents-page", "aria-busy": "true" });
  root.append(
    el("div", { class: "page-head" },
      el("h1", { tabindex: "-1" }, "Agents"),
      el("div", { class: "page-actions" }, updated, refresh)),
    el("div", { class: "ops-grid" },
      panel("Agents", [ui.summary, ui.agents], "span-2"),
      panel("Record", [
        el("p", { class: "help" }, "What operators did to agents, newest first."),
        ui.record,
      ], "span-2")));
  main.append(root);

  const confirming = new Set(); // agent ids whose revocation is being confirmed
  const revoking = new Set(); // agent ids with a revocation in flight
  let shown = []; // the agents last listed, re-rendered when a confirmation opens or closes

  const table = (caption, headings, rows) => el("table", { class: "data-table" },
    el("caption", { class: "sr-only" }, caption),
    el("thead", null, el("tr", null, headings.map((h) => (h ? el("th", { scope: "col" }, h) : null)))),
    el("tbody", null, rows));

  function rolesOf(agent) {
    const roles = agent.roles || [];
    if (!roles.length) return el("span", { class: "muted", title: "only tasks that need no role" }, "none");
    return el("div", { class: "agent-roles" }, roles.map((role) =>
      (role === "*" ? badge("* every role", ["role", "role-any"]) : badge(role, ["role"]))));
  }

  // One live claim: the task (a link to its ticket), its lease, its last progress; a stalled
  // claim is marked (class and badge) and says how long it has made no progress.
  function liveClaim(claim) {
    const stalled = Boolean(claim.stalled);
    return el("li", { class: ["live-claim", stalled ? "stalled" : null], "data-task-id": claim.task_id },
      el("a", { class: "claim-task", href: ticketHref(claim.ticket_id) }, claim.task_type),
      stalled ? [" ", badge("stalled", ["bad", "stalled-badge"])] : null,
      el("span", { class: "claim-lease" }, timeEl(claim.lease_expires_at, "lease")),
      el("span", { class: "claim-progress" },
        stalled ? "no progress since " : "last progress ",
        claim.last_progress_at ? timeEl(claim.last_progress_at, "ago") : el("span", { class: "muted" }, "never")));
  }

  // What the agent spent today (UTC): against its daily budget when it has one ("$1.20 / $2.00
  // today", coloured from 80 %), else the sum alone; and the tokens.
  function spentToday(agent) {
    const spent = agent.spent_today || {};
    const cost = Number(spent.cost_usd || 0);
    const tokens = Number(spent.input_tokens || 0) + Number(spent.output_tokens || 0);
    const budget = agent.daily_cost_usd;
    return el("div", { class: "agent-spend" },
      budget !== null && budget !== undefined
        ? spendMeter(cost, budget, "cost_usd", " today")
        : el("span", { class: "spend-text" }, fmtUsd(cost) + " today"),
      el("span", { class: "spend-tokens" }, fmtTokens(tokens) + (tokens === 1 ? " token" : " tokens")));
  }

  function liveClaims(agent) {
    const claims = agent.live_claims || [];
    if (!claims.length) return el("span", { class: "muted" }, "none");
    return el("ul", { class: "live-claims" }, claims.map(liveClaim));
  }

  // Operators: "Revoke tokens…" opens a confirmation in the row; "Revoke" there revokes.
  function revokeControl(agent) {
    const id = agent.agent_id;
    if (revoking.has(id)) {
      return el("button", { type: "button", class: "btn btn-small revoke-tokens", disabled: true }, "Revoking…");
    }
    const open = confirming.has(id);
    const toggle = (on) => {
      if (on) confirming.add(id); else confirming.delete(id);
      renderTable(shown);
      if (!on) focusRevoke(id);
    };
    return [
      el("button", {
        type: "button", class: "btn btn-small revoke-tokens", "aria-expanded": String(open),
        onclick: () => toggle(!open),
      }, "Revoke tokens…"),
      open
        ? el("div", { class: "revoke-confirm", role: "group", "aria-label": "Confirm the revocation" },
          el("p", { class: "revoke-question" }, "Revoke every token of ", el("strong", null, id),
            "? Its requests are refused at once, until an operator issues it a new one."),
          el("div", { class: "button-row" },
            el("button", { type: "button", class: "btn btn-danger btn-small confirm-revoke", onclick: () => revoke(id) }, "Revoke"),
            el("button", { type: "button", class: "btn btn-small cancel-revoke", onclick: () => toggle(false) }, "Cancel")))
        : null,
    ];
  }

  // Focus the agent's "Revoke tokens…" (else Refresh) once its confirmation is gone.
  function focusRevoke(id) {
    const row = Array.from(ui.agents.querySelectorAll("tr[data-agent-id]"))
      .find((tr) => tr.getAttribute("data-agent-id") === id);
    const button = row && row.querySelector("button.revoke-tokens");
    if (button && !button.disabled) button.focus(); else refresh.focus();
  }

  function agentRow(agent) {
    const claims = agent.live_claims || [];
    const stalled = claims.filter((c) => c.stalled).length;
    return el("tr", {
      class: ["agent", stalled ? "has-stalled" : null], "data-agent-id": agent.agent_id, "data-key": agent.agent_id,
    },
    el("td", { class: "agent-id" }, el("code", null, agent.agent_id), spentToday(agent)),
    el("td", { class: "roles" }, rolesOf(agent)),
    el("td", { class: "num max-claims" }, String(agent.max_claims)),
    el("td", { class: "operator" }, agent.operator ? badge("operator", ["forced"]) : el("span", { class: "muted" }, "no")),
    el("td", { class: "registered" }, agent.registered
      ? badge("registered", ["ok"])
      : badge("not registered", ["status-pending"])),
    el("td", { class: "last-seen" }, timeEl(agent.last_seen_at, "ago")),
    el("td", { class: "num tasks-completed" }, Number(agent.tasks_completed || 0).toLocaleString()),
    el("td", { class: "num tasks-failed" }, Number(agent.tasks_failed || 0).toLocaleString()),
    el("td", { class: "claims" }, liveClaims(agent)),
    operator ? el("td", { class: "agent-actions" }, agent.registered ? revokeControl(agent) : null) : null);
  }

  function renderTable(agents) {
    shown = agents;
    const claims = agents.reduce((n, a) => n + (a.live_claims || []).length, 0);
    const stalled = agents.reduce((n, a) => n + (a.live_claims || []).filter((c) => c.stalled).length, 0);
    ui.summary.textContent = agents.length + (agents.length === 1 ? " agent, " : " agents, ") +
      claims + (claims === 1 ? " live claim" : " live claims") + (stalled ? ", " + stalled + " stalled" : "") + ".";
    const headings = ["Agent, spent today", "Roles", "Max claims", "Operator", "Registered", "Last seen",
      "Completed", "Failed", "Live claims", operator ? "Actions" : null];
    const rows = agents.length
      ? agents.map(agentRow)
      : el("tr", null, el("td", { colspan: operator ? 10 : 9 }, emptyNote("No agents known yet.")));
    keepFocus(ui.agents, () => ui.agents.replaceChildren(table("Agents", headings, rows)));
  }

  function renderRecord(record) {
    if (!record.length) {
      ui.record.replaceChildren(emptyNote("Nothing has been done to agents yet."));
      return;
    }
    ui.record.replaceChildren(table("What operators did to agents", ["When", "Agent", "Action", "By"],
      record.map((r) => el("tr", { class: "record-entry", "data-agent-id": r.agent_id, "data-action": r.action },
        el("td", null, timeEl(r.at, "ago")),
        el("td", { class: "record-agent" }, el("code", null, r.agent_id)),
        el("td", { class: "record-action" }, r.action),
        el("td", { class: "record-actor" }, r.actor)))));
  }

  // Revoke: DELETE, flash how many tokens went, then reload (the record shows the revocation).
  async function revoke(id) {
    const hadFocus = ui.agents.contains(document.activeElement);
    confirming.delete(id);
    revoking.add(id);
    renderTable(shown);
    if (hadFocus) refresh.focus();
    try {
      const res = await api("/api/v1/agents/" + encodeURIComponent(id) + "/tokens", {
        method: "DELETE", signal: page.signal,
      });
      const n = res && typeof res.revoked === "number" ? res.revoked : 0;
      flash("ok", "Revoked " + n + (n === 1 ? " token" : " tokens") + " of " + id + ".");
    } catch (err) {
      flashError(err, "Revoking the tokens of " + id + " failed");
    } finally {
      revoking.delete(id);
      if (!page.signal.aborted) renderTable(shown);
    }
    if (page.signal.aborted) return;
    if (hadFocus && document.activeElement === refresh) focusRevoke(id);
    load();
  }

  let lastRecord = null; // the record last shown, as JSON
  let loading = false;
  let again = false; // a load was asked for while one ran: run it after
  async function load() {
    if (loading) { again = true; return; }
    loading = true;
    root.setAttribute("aria-busy", "true");
    try {
      const answer = await api("/api/v1/agents", { signal: page.signal });
      if (page.signal.aborted) return;
      // unchanged parts are left as they are (their relative times refresh by themselves)
      const [agents, record] = [answer.agents || [], answer.record || []];
      if (JSON.stringify(agents) !== JSON.stringify(shown) || !ui.agents.firstChild) renderTable(agents);
      const recordText = JSON.stringify(record);
      if (recordText !== lastRecord) { lastRecord = recordText; renderRecord(record); }
      updated.replaceChildren("updated ", timeEl(new Date().toISOString(), "ago"));
    } catch (err) {
      if (!isQuiet(err) && !page.signal.aborted) flashError(err, "Loading the agents failed");
    } finally {
      loading = false;
      root.removeAttribute("aria-busy");
    }
    if (again && !page.signal.aborted) { again = false; load(); }
  }

  refresh.addEventListener("click", () => load());
  load();
  page.setInterval(() => load(), AGENTS_REFRESH_MS);
}
