// The board: one column per phase, in the workflow's order, with the cards of its tickets;
// filters by priority and title; "Load more" per column; cards that move, appear and change
// as the live stream reports events about them. A card with a budget shows its spend against
// each limit (spendMeter, which the ticket and agents pages show too).

import { api, ApiError, isQuiet } from "../api.js";
import { flashError } from "../flash.js";
import { gateBadge, priorityBadge } from "../lib/badges.js";
import { el, emptyNote } from "../lib/dom.js";
import { qs } from "../lib/text.js";
import { timeEl } from "../lib/time.js";
import { ticketHref } from "../router.js";
import { openStream } from "../stream.js";
import { phaseName, phaseRank, priorities } from "../workflow.js";

const PAGE_SIZE = 25; // cards per column page
const COALESCE_MS = 150; // collect ticket ids this long before fetching their cards
const COALESCE_MAX = 25; // more distinct tickets than this in one window: reload all
const FILTER_DEBOUNCE_MS = 300; // text filter

// The filters, kept while moving between pages.
const filters = { priority: "", q: "" };

// Spend against a budget, as the service counts it: "warning" from 80 % of the limit (the
// service's budget.warning), "exceeded" from the whole limit (budget.exceeded), else "ok".
export const SPEND_WARNING_SHARE = 0.8;

export function spendLevel(spent, budget) {
  if (spent >= budget) return "exceeded";
  if (spent >= budget * SPEND_WARNING_SHARE) return "warning";
  return "ok";
}

// "1,200" in the reader's locale.
export function fmtTokens(n) {
  return Number(n || 0).toLocaleString();
}

// "$0.80", "$0.875", "$1,250.00": two to four decimals, so that a small cost does not read as
// "$0.00".
export function fmtUsd(x) {
  return "$" + Number(x || 0).toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 4 });
}

// One limit of a budget: div.spend[data-limit][data-level] (classes spend-ok, spend-warning,
// spend-exceeded) with a <meter> filled to spent/budget (full from 100 %), the text
// ("1,200 / 1,000 tokens", "$0.80 / $1.00", then `suffix`) and the share used, which says in
// words what the colour says. `limit` is "tokens" or "cost_usd".
export function spendMeter(spent, budget, limit, suffix) {
  const level = spendLevel(spent, budget);
  const share = budget > 0 ? spent / budget : 1;
  const percent = Math.floor(share * 100 + 1e-9); // 0.29 * 100 is 28.999…
  const tokens = limit === "tokens";
  const text = tokens
    ? fmtTokens(spent) + " / " + fmtTokens(budget) + " tokens"
    : fmtUsd(spent) + " / " + fmtUsd(budget);
  const what = (tokens ? "tokens" : "cost") + " against the budget";
  return el("div", {
    class: ["spend", "spend-" + level], "data-level": level, "data-limit": limit,
    "data-percent": Math.min(100, percent),
  },
  el("meter", {
    class: "spend-bar", min: 0, max: budget > 0 ? budget : 1,
    value: budget > 0 ? Math.min(spent, budget) : 1,
    "aria-label": what, title: percent + " % of the budget",
  }),
  el("div", { class: "spend-row" },
    el("span", { class: "spend-text" }, text + (suffix || "")),
    el("span", { class: "spend-share" }, percent + " %")));
}

// A card's spend: a meter per limit of its budget; without a budget, what it spent as text
// (nothing when it spent nothing).
function cardSpend(card) {
  const tokens = Number(card.spent_tokens || 0);
  const cost = Number(card.spent_cost_usd || 0);
  const meters = [];
  if (card.budget_tokens !== null && card.budget_tokens !== undefined) {
    meters.push(spendMeter(tokens, card.budget_tokens, "tokens"));
  }
  if (card.budget_cost_usd !== null && card.budget_cost_usd !== undefined) {
    meters.push(spendMeter(cost, card.budget_cost_usd, "cost_usd"));
  }
  if (meters.length) return el("div", { class: "card-spend" }, meters);
  if (!tokens && !cost) return null;
  return el("div", { class: "card-spend" },
    el("span", { class: "spend-note" }, fmtTokens(tokens) + " tokens · " + fmtUsd(cost) + " spent"));
}

export function renderBoard(page, main) {
  document.title = "Board · phaseflow";

  // Filters: priority applies at once, text after a 300 ms pause.
  const prioritySelect = el("select", { id: "filter-priority" },
    el("option", { value: "" }, "Any"),
    priorities().map((p) => el("option", { value: p }, p)));
  prioritySelect.value = filters.priority;
  const textInput = el("input", {
    id: "filter-text", type: "search", autocomplete: "off", placeholder: "Search titles",
  });
  textInput.value = filters.q;
  const summary = el("p", { class: "board-summary" });
  const boardEl = el("div", { id: "board", class: "board", "aria-busy": "true" });

  main.append(
    el("div", { class: "page-head" },
      el("h1", { tabindex: "-1" }, "Board"),
      el("form", { class: "filters", role: "search", "aria-label": "Filter tickets", onsubmit: (e) => e.preventDefault() },
        el("div", { class: "field field-inline" },
          el("label", { for: "filter-priority" }, "Priority"), prioritySelect),
        el("div", { class: "field field-inline" },
          el("label", { for: "filter-text" }, "Title contains"), textInput))),
    summary,
    boardEl);

  // What the board shows: columns by phase, and where each loaded ticket is.
  const board = {
    gen: 0, // bumped by each full load; stale answers are dropped
    loading: false,
    loadController: null,
    columns: new Map(), // phase_id -> column state
    where: new Map(), // ticket_id -> phase_id of its card on screen
    pending: new Map(), // ticket_id -> {created, fromPhase}: events of the current window
    flushTimer: 0,
    chain: Promise.resolve(), // card updates are applied one window after the other
  };

  prioritySelect.addEventListener("change", () => {
    filters.priority = prioritySelect.value;
    load();
  });
  let filterTimer = 0;
  textInput.addEventListener("input", () => {
    page.clearTimeout(filterTimer);
    filterTimer = page.setTimeout(() => {
      const q = textInput.value.trim();
      if (q === filters.q) return;
      filters.q = q;
      load();
    }, FILTER_DEBOUNCE_MS);
  });

  function matchesFilters(card) {
    if (filters.priority && card.priority !== filters.priority) return false;
    if (filters.q && !String(card.title || "").toLowerCase().includes(filters.q.toLowerCase())) return false;
    return true;
  }

  function updateSummary() {
    let total = 0;
    for (const col of board.columns.values()) total += col.total;
    const filtered = filters.priority || filters.q;
    summary.textContent = total.toLocaleString() + (total === 1 ? " ticket" : " tickets") +
      (filtered ? " match the filters" : "");
  }

  // One card: article.card with title link, priority, tasks, spend, gate, claims and age in
  // phase.
  function buildCard(card) {
    const priority = String(card.priority || "").toLowerCase();
    const gate = card.gate_status || null;
    const claims = Array.isArray(card.claimed_by) ? card.claimed_by : [];
    return el("article", { class: ["card", "prio-" + priority], "data-ticket-id": card.ticket_id },
      el("div", { class: "card-row" },
        priorityBadge(card.priority, "card-priority"),
        el("span", { class: "card-tasks" }, (card.tasks_done || 0) + "/" + (card.tasks_total || 0) + " tasks")),
      el("a", { class: "card-title", href: ticketHref(card.ticket_id) }, card.title),
      cardSpend(card),
      el("div", { class: ["card-gate", "gate-" + (gate || "none")] },
        gateBadge(gate),
        card.blocking_reason
          ? el("span", { class: "card-reason", title: card.blocking_reason }, card.blocking_reason)
          : null),
      el("div", { class: "card-claims" },
        claims.length ? "claimed by " + claims.join(", ") : el("span", { class: "muted" }, "unclaimed")),
      el("div", { class: "card-age" }, timeEl(card.entered_phase_at, "phase")));
  }

  // One column: section.column[data-phase] with heading, count, cards and "Load more".
  function buildColumn(column) {
    const headingId = "col-" + column.phase_id;
    const col = {
      phase: column.phase_id,
      name: phaseName(column.phase_id),
      total: column.total || 0,
      cursor: column.next_cursor || null,
      items: new Map(), // ticket_id -> li
      count: el("span", { class: "column-count", title: "tickets in this phase" }),
      list: el("ul", { class: "card-list", "aria-labelledby": headingId }),
      empty: emptyNote("No tickets"),
      footer: el("div", { class: "column-footer" }),
      more: null,
    };
    col.section = el("section", { class: "column", "data-phase": col.phase, "aria-labelledby": headingId },
      el("div", { class: "column-head" },
        el("h2", { id: headingId }, col.name),
        col.count),
      col.list, col.empty, col.footer);
    board.columns.set(col.phase, col);
    for (const card of column.cards || []) appendCard(col, card);
    updateColumn(col);
    return col.section;
  }

  // Count, empty note and the "Load more" button (present only while there is a next page).
  function updateColumn(col) {
    col.count.textContent = col.total.toLocaleString();
    col.empty.hidden = col.items.size > 0;
    if (col.cursor && !col.more) {
      col.more = el("button", { type: "button", class: "btn load-more", onclick: () => loadMore(col) }, "Load more");
      col.footer.append(col.more);
    } else if (!col.cursor && col.more) {
      col.more.remove();
      col.more = null;
    }
    if (col.more && !col.more.disabled) {
      col.more.textContent = "Load more (" + col.items.size + " of " + col.total.toLocaleString() + ")";
    }
  }

  function appendCard(col, card) {
    const li = el("li", null, buildCard(card));
    col.items.set(card.ticket_id, li);
    board.where.set(card.ticket_id, col.phase);
    col.list.append(li);
  }

  function prependCard(col, card) {
    const li = el("li", null, buildCard(card));
    col.items.set(card.ticket_id, li);
    board.where.set(card.ticket_id, col.phase);
    col.list.prepend(li);
    updateColumn(col);
  }

  function detachCard(ticketId) {
    const phase = board.where.get(ticketId);
    const col = board.columns.get(phase);
    board.where.delete(ticketId);
    if (!col) return;
    const li = col.items.get(ticketId);
    if (li) li.remove();
    col.items.delete(ticketId);
    updateColumn(col);
  }

  function bump(phase, delta) {
    const col = board.columns.get(phase);
    if (!col) return;
    col.total = Math.max(0, col.total + delta);
    updateColumn(col);
  }

  // A fresh card from the server: move/replace/insert it at the top of its column, or drop
  // it when it no longer matches the filters. Counts: a card seen on screen moves its count;
  // one not on screen counts as new when created in this window, as moved when a transition
  // in this window named its previous phase, else as already counted (it was further down).
  function applyCard(card, hint) {
    const id = card.ticket_id;
    const oldPhase = board.where.get(id);
    const target = matchesFilters(card) ? board.columns.get(card.phase_id) : undefined;
    if (oldPhase !== undefined) {
      detachCard(id);
      if (!target || oldPhase !== card.phase_id) bump(oldPhase, -1);
      if (target && oldPhase !== card.phase_id) bump(card.phase_id, +1);
    } else if (target) {
      if (hint.created) {
        bump(card.phase_id, +1);
      } else if (hint.fromPhase && hint.fromPhase !== card.phase_id) {
        bump(hint.fromPhase, -1);
        bump(card.phase_id, +1);
      }
    }
    if (target) prependCard(target, card);
    updateSummary();
  }

  // The ticket is gone (404): remove its card.
  function dropCard(ticketId) {
    const phase = board.where.get(ticketId);
    if (phase === undefined) return;
    detachCard(ticketId);
    bump(phase, -1);
    updateSummary();
  }

  // Full load: GET /api/v1/board with the filters; replaces every column.
  async function load() {
    const gen = ++board.gen;
    if (board.loadController) board.loadController.abort();
    const controller = new AbortController();
    board.loadController = controller;
    page.signal.addEventListener("abort", () => controller.abort(), { once: true });
    board.loading = true;
    board.pending.clear(); // what happened until now is in the answer
    boardEl.setAttribute("aria-busy", "true");
    try {
      const data = await api("/api/v1/board?" + qs({ priority: filters.priority, q: filters.q, limit: PAGE_SIZE }),
        { signal: controller.signal });
      if (gen !== board.gen) return;
      board.columns.clear();
      board.where.clear();
      const fragment = document.createDocumentFragment();
      const columns = (data.columns || []).slice()
        .sort((a, b) => phaseRank(a.phase_id) - phaseRank(b.phase_id));
      for (const column of columns) fragment.append(buildColumn(column));
      boardEl.replaceChildren(fragment);
      updateSummary();
    } catch (err) {
      if (gen !== board.gen || isQuiet(err)) return;
      flashError(err, "Loading the board failed");
      if (!board.columns.size) {
        boardEl.replaceChildren(el("div", { class: "panel notice" },
          el("p", null, "The board could not be loaded."),
          el("button", { type: "button", class: "btn btn-primary", onclick: () => load() }, "Try again")));
      }
    } finally {
      if (gen === board.gen) {
        board.loading = false;
        boardEl.removeAttribute("aria-busy");
        if (board.pending.size) scheduleFlush(0); // events that came in during the load
      }
    }
  }

  // Next page of one column (cards already on screen are skipped).
  async function loadMore(col) {
    const button = col.more;
    if (!button || !col.cursor) return;
    const gen = board.gen;
    button.disabled = true;
    button.textContent = "Loading…";
    col.section.setAttribute("aria-busy", "true");
    try {
      const data = await api("/api/v1/board/columns/" + encodeURIComponent(col.phase) + "?" +
        qs({ priority: filters.priority, q: filters.q, limit: PAGE_SIZE, cursor: col.cursor }),
        { signal: page.signal });
      if (gen !== board.gen) return;
      for (const card of data.cards || []) {
        if (!board.where.has(card.ticket_id)) appendCard(col, card);
      }
      col.cursor = data.next_cursor || null;
      if (typeof data.total === "number") col.total = data.total;
    } catch (err) {
      flashError(err, "Loading more " + col.name + " tickets failed");
    } finally {
      col.section.removeAttribute("aria-busy");
      if (gen === board.gen) {
        button.disabled = false;
        updateColumn(col);
        updateSummary();
        // The button went away on the last page: keep focus in the column.
        if (!col.more && document.activeElement === document.body) {
          const last = col.list.querySelector("li:last-child a.card-title");
          if (last) last.focus();
        }
      }
    }
  }

  // Live events: collect ticket ids for 150 ms, then fetch each card once (or reload all).
  function noteEvent(event) {
    const id = event.subject;
    if (!id) return;
    let hint = board.pending.get(id);
    if (!hint) {
      hint = { created: false, fromPhase: null };
      board.pending.set(id, hint);
    }
    if (event.type === "ticket.created") hint.created = true;
    const previous = event.data && event.data.previous_phase;
    if ((event.type === "phase.transitioned" || event.type === "phase.entered") && previous && !hint.fromPhase) {
      hint.fromPhase = previous;
    }
    scheduleFlush(COALESCE_MS);
  }

  function scheduleFlush(delay) {
    if (board.flushTimer) return;
    board.flushTimer = page.setTimeout(() => {
      board.flushTimer = 0;
      board.chain = board.chain.then(flush, flush);
    }, delay);
  }

  async function flush() {
    if (board.loading || page.signal.aborted) return; // load() flushes when it is done
    const batch = board.pending;
    board.pending = new Map();
    if (!batch.size) return;
    if (batch.size > COALESCE_MAX) {
      load();
      return;
    }
    const gen = board.gen;
    const results = await Promise.all(Array.from(batch, ([id, hint]) =>
      api("/api/v1/board/cards/" + encodeURIComponent(id), { signal: page.signal })
        .then((card) => ({ id, hint, card }), (err) => ({ id, hint, err }))));
    if (gen !== board.gen || page.signal.aborted) return; // a full load replaced the board
    let failure = null;
    for (const result of results) {
      if (result.card) applyCard(result.card, result.hint);
      else if (result.err instanceof ApiError && result.err.status === 404) dropCard(result.id);
      else if (!isQuiet(result.err)) failure = result.err;
    }
    if (failure) flashError(failure, "A live update failed");
  }

  load();
  openStream(page, { onEvent: noteEvent, onReload: () => load() });
}
