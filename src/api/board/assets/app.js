// phaseflow board: the single-page app served at "/".
//
// Plain ES2020, no framework, no build step. It runs under a strict Content-Security-Policy, so
// all DOM is built with createElement/textContent (see `el`), never from HTML strings: titles,
// reasons, artifacts, headers and bodies are agent input and are always shown as text.
//
// Sections: constants and state; helpers (DOM, formatting, badges, flash); api client; sse
// stream; router and page lifecycle; pages (sign-in, board, ticket, operations); start-up.
(function () {
  "use strict";

  // ---------------------------------------------------------------------------------------------
  // Constants and state
  // ---------------------------------------------------------------------------------------------

  const TOKEN_KEY = "phaseflow.token"; // sessionStorage only: never a URL, cookie or localStorage
  const PHASES = [
    "PHASE_BACKLOG", "PHASE_REQUIREMENTS", "PHASE_DESIGN", "PHASE_IMPLEMENTATION",
    "PHASE_TESTING", "PHASE_DEPLOYMENT", "PHASE_DONE", "PHASE_BLOCKED",
  ];
  const PRIORITIES = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];
  const PAGE_SIZE = 25; // cards per column page
  const COALESCE_MS = 150; // board: collect ticket ids this long before fetching their cards
  const COALESCE_MAX = 25; // board: more distinct tickets than this in one window: reload all
  const FILTER_DEBOUNCE_MS = 300; // board: text filter
  const TICKET_RELOAD_MS = 250; // ticket page: debounce of reloads on live events
  const OPS_REFRESH_MS = 5000; // operations page: auto refresh
  const BACKOFF_MIN_MS = 500; // stream reconnect delay, doubled up to the max
  const BACKOFF_MAX_MS = 10000;
  const LIVE_EVENTS_MAX = 100; // ticket page: live events kept in the list
  const SESSION_ENDED = "your session ended: sign in again";

  const state = {
    me: null, // {agent, operator} from GET /api/v1/me
    page: null, // the current page's lifecycle (see createPage)
    afterSignIn: "#/board", // where sign-in goes next
    signInNote: "", // why the sign-in page is shown (session ended)
    boardFilters: { priority: "", q: "" }, // kept while moving between pages
  };

  // ---------------------------------------------------------------------------------------------
  // Helpers: DOM
  // ---------------------------------------------------------------------------------------------

  // el(tag, attrs, ...children): an element with attributes and children. Strings become text
  // nodes; `on<event>` functions become listeners; `class` may be an array; false/null skip.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [key, value] of Object.entries(attrs)) {
        if (value === null || value === undefined || value === false) continue;
        if (key === "class") {
          node.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
        } else if (key === "for") {
          node.htmlFor = value;
        } else if (key.startsWith("on") && typeof value === "function") {
          node.addEventListener(key.slice(2), value);
        } else if (key === "style") {
          throw new Error("style attributes are blocked by the CSP; use a class");
        } else {
          node.setAttribute(key, value === true ? "" : String(value));
        }
      }
    }
    appendChildren(node, children);
    return node;
  }

  function appendChildren(node, children) {
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      if (Array.isArray(child)) appendChildren(node, child);
      else if (child instanceof Node) node.appendChild(child);
      else node.appendChild(document.createTextNode(String(child)));
    }
  }

  // Replaces the children of `node` (null/false children are skipped, unlike replaceChildren).
  function fill(node, ...children) {
    node.replaceChildren();
    appendChildren(node, children);
    return node;
  }

  // A section of a page: a panel with a heading and a body.
  function panel(title, body, extraClass) {
    const id = "h-" + title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
    return el("section", { class: ["panel", extraClass], "aria-labelledby": id },
      el("h2", { id, class: "panel-title" }, title), body);
  }

  // A muted placeholder line ("No tasks yet.").
  function emptyNote(text) {
    return el("p", { class: "empty-note" }, text);
  }

  // Keeps keyboard focus across a re-render of `container`: remembers the focused element by
  // the nearest [data-key] ancestor and its class, and focuses the same one afterwards.
  function keepFocus(container, render) {
    const active = document.activeElement;
    let key = null;
    if (active && container.contains(active)) {
      const holder = active.closest("[data-key]");
      key = holder ? { id: holder.getAttribute("data-key"), cls: active.className } : null;
    }
    render();
    if (!key) return;
    for (const holder of container.querySelectorAll("[data-key]")) {
      if (holder.getAttribute("data-key") !== key.id) continue;
      const target = Array.from(holder.querySelectorAll("button, a, input, select, summary"))
        .find((node) => node.className === key.cls);
      if (target) target.focus();
      return;
    }
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const id = setTimeout(resolve, ms);
      if (signal) signal.addEventListener("abort", () => { clearTimeout(id); resolve(); }, { once: true });
    });
  }

  // Query string from an object, leaving out empty values.
  function qs(params) {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
    }
    return search.toString();
  }

  function ticketHref(id) {
    return "#/tickets/" + encodeURIComponent(id);
  }

  function shortId(id) {
    return id ? String(id).slice(0, 8) : "—";
  }

  // Pretty JSON for <pre> blocks (strings are shown as they are).
  function prettyJson(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "string") return value;
    try { return JSON.stringify(value, null, 2); } catch (_) { return String(value); }
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers: formatting (phases, durations, times)
  // ---------------------------------------------------------------------------------------------

  function phaseName(phaseId) {
    return phaseId ? String(phaseId).replace(/^PHASE_/, "").toLowerCase() : "—";
  }

  // "45 s", "5 min", "2 h 10 min", "3 d 4 h".
  function fmtDuration(totalSeconds) {
    const s = Math.max(0, Math.floor(totalSeconds));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min";
    const h = Math.floor(m / 60);
    if (h < 24) return m % 60 ? h + " h " + (m % 60) + " min" : h + " h";
    const d = Math.floor(h / 24);
    return h % 24 ? d + " d " + (h % 24) + " h" : d + " d";
  }

  const absoluteFormat = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });

  function fmtAbsolute(iso) {
    const t = Date.parse(iso);
    return Number.isNaN(t) ? String(iso) : absoluteFormat.format(new Date(t));
  }

  // Text of a relative time: mode "phase" ("in phase 5 min"), "lease" ("lease ends in 3 min" /
  // "lease ended 1 min ago") or "ago" ("5 min ago" / "in 3 min").
  function relText(mode, iso) {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return String(iso);
    const diff = (Date.now() - t) / 1000;
    if (mode === "phase") return "in phase " + fmtDuration(diff);
    if (mode === "lease") return diff < 0 ? "lease ends in " + fmtDuration(-diff) : "lease ended " + fmtDuration(diff) + " ago";
    if (diff >= 0) return diff < 10 ? "just now" : fmtDuration(diff) + " ago";
    return "in " + fmtDuration(-diff);
  }

  // <time datetime>: relative (kept fresh by refreshRelativeTimes) or absolute, full time as title.
  function timeEl(iso, mode) {
    if (!iso) return el("span", { class: "muted" }, "—");
    const node = el("time", { datetime: iso, title: fmtAbsolute(iso) });
    if (mode) {
      node.setAttribute("data-rel", mode);
      node.textContent = relText(mode, iso);
    } else {
      node.textContent = fmtAbsolute(iso);
    }
    return node;
  }

  function refreshRelativeTimes() {
    for (const node of document.querySelectorAll("time[data-rel]")) {
      node.textContent = relText(node.getAttribute("data-rel"), node.getAttribute("datetime"));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers: badges (colour always comes with text)
  // ---------------------------------------------------------------------------------------------

  function badge(text, classes) {
    return el("span", { class: ["badge"].concat(classes || []) }, text);
  }

  function priorityBadge(priority, extra) {
    const p = String(priority || "").toLowerCase();
    return badge(priority || "—", ["priority-" + p, extra]);
  }

  function gateBadge(status) {
    return badge(status ? "gate " + status : "no gate result", ["gate-" + (status || "none")]);
  }

  function phaseBadge(phaseId) {
    return badge(phaseName(phaseId), ["phase-badge"]);
  }

  function statusBadge(status, extra) {
    return badge(status, ["status-" + status, extra]);
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers: flash region (#flash)
  // ---------------------------------------------------------------------------------------------

  let flashTimer = 0;

  function flash(kind, message, reasons) {
    const box = document.getElementById("flash");
    clearTimeout(flashTimer);
    box.classList.remove("flash-ok", "flash-error");
    box.replaceChildren();
    if (!message) return;
    box.classList.add(kind === "error" ? "flash-error" : "flash-ok");
    box.append(el("p", { class: "flash-message" }, message));
    if (reasons && reasons.length) {
      box.append(el("ul", { class: "flash-reasons" }, reasons.map((r) => el("li", null, String(r)))));
    }
    box.append(el("button", {
      type: "button", class: "flash-close", "aria-label": "Dismiss message",
      onclick: () => flash(null, ""),
    }, "×"));
    if (kind !== "error") flashTimer = setTimeout(() => flash(null, ""), 8000);
  }

  // Errors that need no message: an aborted request (page left) or an ended session.
  function isQuiet(err) {
    return !err || err.name === "AbortError" || err instanceof SessionEnded;
  }

  function flashError(err, what) {
    if (isQuiet(err)) return;
    const prefix = what ? what + ": " : "";
    if (err instanceof ApiError) flash("error", prefix + err.message, err.reasons);
    else flash("error", prefix + "cannot reach phaseflow (" + ((err && err.message) || err) + ")");
  }

  // ---------------------------------------------------------------------------------------------
  // API client
  // ---------------------------------------------------------------------------------------------

  // A non-2xx answer: {"error": {"code", "message", "reasons"}}.
  class ApiError extends Error {
    constructor(status, code, message, reasons) {
      super(message);
      this.name = "ApiError";
      this.status = status;
      this.code = code;
      this.reasons = reasons;
    }
  }

  // Thrown when a 401 ended the session (the sign-in page is already showing).
  class SessionEnded extends Error {
    constructor() {
      super("session ended");
      this.name = "SessionEnded";
    }
  }

  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY); } catch (_) { return null; }
  }

  function setToken(token) {
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) { /* storage disabled: the session lasts as long as the page */ }
  }

  async function errorFrom(response) {
    let payload = null;
    try { payload = await response.json(); } catch (_) { /* not JSON */ }
    const e = (payload && payload.error) || {};
    return new ApiError(
      response.status,
      e.code || "http_" + response.status,
      e.message || response.statusText || "request failed (" + response.status + ")",
      Array.isArray(e.reasons) ? e.reasons : []);
  }

  // fetch with the bearer token; a 401 ends the session (only if the token is still current).
  async function authFetch(path, options) {
    const token = getToken();
    if (!token) {
      endSession("");
      throw new SessionEnded();
    }
    const headers = Object.assign({ Authorization: "Bearer " + token }, options.headers);
    const response = await fetch(path, Object.assign({}, options, {
      headers, credentials: "omit", cache: "no-store",
    }));
    if (response.status === 401) {
      if (getToken() === token) endSession(SESSION_ENDED);
      throw new SessionEnded();
    }
    return response;
  }

  // JSON call: GET by default; a body makes it a JSON POST.
  async function api(path, opts) {
    const { method = "GET", body, signal } = opts || {};
    const options = { method, signal, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await authFetch(path, options);
    if (!response.ok) throw await errorFrom(response);
    if (response.status === 204) return null;
    return response.json();
  }

  // ---------------------------------------------------------------------------------------------
  // SSE stream: fetch + ReadableStream reader (EventSource cannot send the Authorization header)
  // ---------------------------------------------------------------------------------------------

  // Parser of the event-stream format: feed it text chunks; it calls onMessage({event, data, id})
  // at each blank line. Lines end with \n, \r\n or \r; lines starting with ":" are comments.
  function createSseParser(onMessage) {
    let buffer = "";
    let eventType = "";
    let dataLines = [];
    let lastId = "";

    function handleLine(line) {
      if (line === "") {
        if (dataLines.length) {
          onMessage({ event: eventType || "message", data: dataLines.join("\n"), id: lastId });
        }
        eventType = "";
        dataLines = [];
        return;
      }
      if (line[0] === ":") return; // comment (keepalive)
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value[0] === " ") value = value.slice(1);
      if (field === "event") eventType = value;
      else if (field === "data") dataLines.push(value);
      else if (field === "id") lastId = value;
      // "retry" and unknown fields are ignored: the backoff below decides the delay.
    }

    return function push(chunk) {
      buffer += chunk;
      let pos = 0;
      while (pos < buffer.length) {
        const lf = buffer.indexOf("\n", pos);
        const cr = buffer.indexOf("\r", pos);
        const end = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
        if (end === -1) break;
        if (buffer[end] === "\r" && end === buffer.length - 1) break; // maybe "\r\n" split in two
        handleLine(buffer.slice(pos, end));
        pos = end + (buffer[end] === "\r" && buffer[end + 1] === "\n" ? 2 : 1);
      }
      buffer = buffer.slice(pos);
    };
  }

  // Shows the stream state in #live-status.
  function setLiveStatus(mode) {
    const node = document.getElementById("live-status");
    const texts = {
      live: "live", reconnecting: "reconnecting…", connecting: "connecting…",
      polling: "auto refresh 5 s", off: "",
    };
    node.classList.remove("live-live", "live-reconnecting", "live-connecting", "live-polling", "live-off");
    node.classList.add("live-" + mode);
    node.textContent = texts[mode];
  }

  // Keeps a stream open for the page's lifetime: onEvent(cloudevent) per event, onReload() on
  // `resync` and once a connection is back after it ended or failed (the page reloads then,
  // after the new stream is open, so nothing between the two is missed). Reconnects with a
  // delay growing from 0.5 s to 10 s; stops when the page's signal aborts.
  function openStream(page, { ticketId, onEvent, onReload }) {
    const path = "/api/v1/stream" + (ticketId ? "?" + qs({ ticket_id: ticketId }) : "");
    let delay = BACKOFF_MIN_MS;
    let missed = false; // a connection ended or failed: reload once the next one is open

    function dispatch(message) {
      if (page.signal.aborted) return;
      if (message.event === "cloudevent") {
        let event;
        try { event = JSON.parse(message.data); } catch (_) { return; }
        if (event && typeof event === "object") onEvent(event);
      } else if (message.event === "resync") {
        onReload();
      }
    }

    async function run() {
      setLiveStatus("connecting");
      while (!page.signal.aborted) {
        try {
          const response = await authFetch(path, {
            headers: { Accept: "text/event-stream" }, signal: page.signal,
          });
          if (!response.ok || !response.body) throw await errorFrom(response);
          setLiveStatus("live");
          if (missed) {
            missed = false;
            onReload();
          }
          const reader = response.body.getReader();
          const decoder = new TextDecoder();
          const push = createSseParser(dispatch);
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            delay = BACKOFF_MIN_MS; // bytes arrived: the connection works
            push(decoder.decode(value, { stream: true }));
          }
        } catch (err) {
          if (err instanceof SessionEnded || page.signal.aborted) return;
          // network error, 5xx, 403: reconnect below
        }
        if (page.signal.aborted) return;
        missed = true;
        setLiveStatus("reconnecting");
        await sleep(delay, page.signal);
        delay = Math.min(delay * 2, BACKOFF_MAX_MS);
      }
    }

    run();
  }

  // ---------------------------------------------------------------------------------------------
  // Router and page lifecycle
  // ---------------------------------------------------------------------------------------------

  // A page's lifetime: one AbortController (aborts its fetches and its stream) and its timers,
  // all stopped by close() when the page is left.
  function createPage(name) {
    const controller = new AbortController();
    const timers = new Set();
    return {
      name,
      signal: controller.signal,
      setTimeout(fn, ms) {
        const id = window.setTimeout(() => {
          timers.delete(id);
          if (!controller.signal.aborted) fn();
        }, ms);
        timers.add(id);
        return id;
      },
      clearTimeout(id) {
        window.clearTimeout(id);
        timers.delete(id);
      },
      setInterval(fn, ms) {
        const id = window.setInterval(() => { if (!controller.signal.aborted) fn(); }, ms);
        timers.add(id);
        return id;
      },
      close() {
        controller.abort();
        for (const id of timers) { window.clearTimeout(id); window.clearInterval(id); }
        timers.clear();
      },
    };
  }

  function closePage() {
    if (state.page) state.page.close();
    state.page = null;
  }

  // "#/board", "#/tickets/{id}", "#/operations", "#/sign-in"; null for an in-page anchor.
  function parseRoute(hash) {
    if (!hash || hash === "#" || hash === "#/") return { name: "board" };
    if (!hash.startsWith("#/")) return null;
    const path = hash.slice(2).split("?")[0];
    if (path === "board") return { name: "board" };
    if (path === "operations") return { name: "operations" };
    if (path === "sign-in") return { name: "sign-in" };
    const match = /^tickets\/([^/]+)$/.exec(path);
    if (match) {
      try { return { name: "ticket", id: decodeURIComponent(match[1]) }; } catch (_) { /* bad escape */ }
    }
    return { name: "not-found" };
  }

  function go(hash) {
    if (location.hash === hash) render(true);
    else location.hash = hash;
  }

  function updateSessionUi() {
    const who = document.getElementById("whoami");
    const out = document.getElementById("sign-out");
    if (state.me) {
      who.textContent = state.me.agent + " · " + (state.me.operator ? "operator" : "agent");
      out.hidden = false;
    } else {
      who.textContent = "";
      out.hidden = true;
    }
  }

  function markNav(routeName) {
    for (const link of document.querySelectorAll(".mainnav a")) {
      const current = (routeName === "board" || routeName === "ticket")
        ? link.getAttribute("href") === "#/board"
        : link.getAttribute("href") === "#/" + routeName;
      if (current) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  // The session ended (401) or there is no token: forget it and show the sign-in page.
  function endSession(message) {
    setToken(null);
    state.me = null;
    updateSessionUi();
    const route = parseRoute(location.hash);
    if (route && route.name !== "sign-in") state.afterSignIn = location.hash || "#/board";
    state.signInNote = message || "";
    closePage();
    if (message) flash("error", message);
    go("#/sign-in");
  }

  function signOut() {
    setToken(null);
    state.me = null;
    state.afterSignIn = "#/board";
    state.signInNote = "";
    updateSessionUi();
    closePage();
    flash("ok", "Signed out.");
    go("#/sign-in");
  }

  // Renders the page of the current hash. `moveFocus` focuses the page heading (route changes).
  async function render(moveFocus) {
    let route = parseRoute(location.hash);
    if (!route) return; // an in-page anchor, not a route
    closePage();
    const main = document.getElementById("main");
    main.replaceChildren();
    main.removeAttribute("aria-busy");

    if (!getToken() && route.name !== "sign-in") {
      state.afterSignIn = location.hash || "#/board";
      history.replaceState(null, "", "#/sign-in");
      route = { name: "sign-in" };
    }
    const page = createPage(route.name);
    state.page = page;
    markNav(route.name);

    // Who is signed in decides whether operator controls render: ask once per session.
    if (route.name !== "sign-in" && !state.me) {
      main.setAttribute("aria-busy", "true");
      main.append(emptyNote("Checking your session…"));
      try {
        state.me = await api("/api/v1/me", { signal: page.signal });
      } catch (err) {
        if (isQuiet(err) || page.signal.aborted) return;
        main.removeAttribute("aria-busy");
        main.replaceChildren(el("div", { class: "panel notice" },
          el("h1", { tabindex: "-1" }, "phaseflow cannot be reached"),
          el("p", null, err.message || String(err)),
          el("button", { type: "button", class: "btn btn-primary", onclick: () => render(true) }, "Try again")));
        return;
      }
      if (page.signal.aborted) return;
      updateSessionUi();
      main.removeAttribute("aria-busy");
      main.replaceChildren();
    }

    switch (route.name) {
      case "sign-in": renderSignIn(page, main); break;
      case "board": renderBoard(page, main); break;
      case "ticket": renderTicket(page, main, route.id); break;
      case "operations": renderOperations(page, main); break;
      default: renderNotFound(page, main);
    }
    if (moveFocus) {
      const heading = main.querySelector("[data-autofocus]") || main.querySelector("h1");
      if (heading) heading.focus({ preventScroll: false });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Page: sign-in
  // ---------------------------------------------------------------------------------------------

  function renderSignIn(page, main) {
    document.title = "Sign in · phaseflow";
    setLiveStatus("off");
    const error = el("p", { id: "sign-in-error", class: "form-error", role: "alert", hidden: true });
    // No `name` on the input: even without the script, the token could never go into a URL.
    const input = el("input", {
      id: "token", type: "password", autocomplete: "off", spellcheck: "false",
      autocapitalize: "off", "aria-describedby": "token-help", "data-autofocus": true,
    });
    const submit = el("button", { type: "submit", class: "btn btn-primary" }, "Sign in");

    function showError(text) {
      error.textContent = text;
      error.hidden = false;
    }

    const form = el("form", { id: "sign-in", class: "stack", novalidate: true },
      el("div", { class: "field" },
        el("label", { for: "token" }, "API token"),
        input,
        el("p", { id: "token-help", class: "help" },
          "The bearer token phaseflow gave your agent. It is kept in this tab only.")),
      error,
      submit);

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      const token = input.value.trim();
      if (!token) {
        showError("Enter your API token.");
        input.focus();
        return;
      }
      submit.disabled = true;
      form.setAttribute("aria-busy", "true");
      try {
        const response = await fetch("/api/v1/me", {
          headers: { Authorization: "Bearer " + token, Accept: "application/json" },
          credentials: "omit", cache: "no-store", signal: page.signal,
        });
        if (!response.ok) {
          const err = await errorFrom(response);
          showError(response.status === 401
            ? "That token was not accepted: " + err.message
            : "Sign-in failed: " + err.message);
          input.focus();
          return;
        }
        const me = await response.json();
        setToken(token);
        state.me = me;
        state.signInNote = "";
        input.value = "";
        updateSessionUi();
        flash("ok", "Signed in as " + me.agent + ".");
        const target = state.afterSignIn && state.afterSignIn !== "#/sign-in" ? state.afterSignIn : "#/board";
        state.afterSignIn = "#/board";
        go(target);
      } catch (err) {
        if (!page.signal.aborted) showError("Cannot reach phaseflow: " + (err.message || err));
      } finally {
        submit.disabled = false;
        form.removeAttribute("aria-busy");
      }
    });

    main.append(el("div", { class: "sign-in-wrap" },
      el("div", { class: "panel sign-in-panel" },
        el("h1", { tabindex: "-1" }, "Sign in to phaseflow"),
        state.signInNote ? el("p", { class: "notice-text" }, state.signInNote) : null,
        state.me ? el("p", { class: "help" }, "Signed in as " + state.me.agent + "; a new token replaces it.") : null,
        form)));
    input.focus();
  }

  // ---------------------------------------------------------------------------------------------
  // Page: board
  // ---------------------------------------------------------------------------------------------

  function renderBoard(page, main) {
    document.title = "Board · phaseflow";
    const filters = state.boardFilters;

    // Filters: priority applies at once, text after a 300 ms pause.
    const prioritySelect = el("select", { id: "filter-priority" },
      el("option", { value: "" }, "Any"),
      PRIORITIES.map((p) => el("option", { value: p }, p)));
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

    // One card: article.card with title link, priority, tasks, gate, claims and age in phase.
    function buildCard(card) {
      const priority = String(card.priority || "").toLowerCase();
      const gate = card.gate_status || null;
      const claims = Array.isArray(card.claimed_by) ? card.claimed_by : [];
      return el("article", { class: ["card", "prio-" + priority], "data-ticket-id": card.ticket_id },
        el("div", { class: "card-row" },
          priorityBadge(card.priority, "card-priority"),
          el("span", { class: "card-tasks" }, (card.tasks_done || 0) + "/" + (card.tasks_total || 0) + " tasks")),
        el("a", { class: "card-title", href: ticketHref(card.ticket_id) }, card.title),
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
        name: column.name || phaseName(column.phase_id),
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
        for (const column of data.columns || []) fragment.append(buildColumn(column));
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

  // ---------------------------------------------------------------------------------------------
  // Page: ticket
  // ---------------------------------------------------------------------------------------------

  function renderTicket(page, main, ticketId) {
    document.title = "Ticket · phaseflow";
    const operator = Boolean(state.me && state.me.operator);
    const enc = encodeURIComponent(ticketId);

    // Containers the loads fill; the ids are what the browser tests look for.
    const ui = {
      title: el("h1", { id: "ticket-title", tabindex: "-1" }, "Loading ticket…"),
      phase: el("span", { id: "ticket-phase", class: "ticket-phase" }),
      priority: el("span", { id: "ticket-priority", class: "ticket-priority" }),
      meta: el("div", { class: "ticket-meta" }),
      description: el("p", { id: "ticket-description", class: "description" }),
      tasks: el("table", { id: "tasks", class: "data-table" }),
      gates: el("div", { id: "gates", class: "gates" }),
      timeline: el("ol", { id: "timeline", class: "timeline" }),
      live: el("ul", { id: "live-events", class: "live-events" }),
      liveEmpty: emptyNote("No events since this page opened."),
      artifacts: el("div", { id: "artifacts", class: "artifacts" }),
      summary: el("pre", { id: "context-summary", class: "pre" }),
      summaryMeta: el("p", { class: "help" }),
      context: el("div", { id: "context", class: "context" }),
    };
    const root = el("div", { class: "ticket-page", "aria-busy": "true" });
    const releaseDrafts = new Map(); // task id -> {text, focused}: open release forms survive reloads

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
        panel("Tasks", el("div", { class: "table-wrap" }, ui.tasks), "span-2"),
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

    // Tasks table: type, phase, description, status, dependencies (by type), claim, release.
    function renderTasks(tasks) {
      // Remember open release forms (text and focus) so a reload does not lose what is typed.
      for (const row of ui.tasks.querySelectorAll("tr[data-task-id]")) {
        const form = row.querySelector("form.release-form");
        if (form && !form.hidden) {
          const input = form.querySelector("input.release-reason");
          releaseDrafts.set(row.getAttribute("data-task-id"), {
            text: input.value, focused: document.activeElement === input,
          });
        }
      }
      const typeById = new Map(tasks.map((t) => [t.id, t.task_type]));
      const head = el("thead", null, el("tr", null,
        ["Type", "Phase", "Description", "Status", "Depends on", "Claim", "Attempt"].map((h) => el("th", { scope: "col" }, h)),
        operator ? el("th", { scope: "col" }, "Actions") : null));
      const body = el("tbody");
      if (!tasks.length) {
        body.append(el("tr", null, el("td", { colspan: operator ? 8 : 7 }, emptyNote("No tasks yet."))));
      }
      let focusTarget = null;
      for (const task of tasks) {
        const deps = (task.dependencies || []).map((id) => badge(typeById.get(id) || shortId(id), ["dep"]));
        const claim = task.claimed_by
          ? [el("span", { class: "holder" }, task.claimed_by),
            task.lease_expires_at ? el("span", { class: "lease" }, " · ", timeEl(task.lease_expires_at, "lease")) : null]
          : el("span", { class: "muted" }, "—");
        const row = el("tr", { "data-task-id": task.id },
          el("td", { class: "task-type" }, el("strong", null, task.task_type)),
          el("td", null, phaseName(task.phase_id)),
          el("td", { class: "task-description" }, task.description,
            task.result !== null && task.result !== undefined
              ? el("details", { class: "task-result" }, el("summary", null, "result"), el("pre", { class: "pre" }, prettyJson(task.result)))
              : null),
          el("td", null, statusBadge(task.status, "task-status")),
          el("td", null, el("div", { class: "task-deps" }, deps.length ? deps : el("span", { class: "muted" }, "—"))),
          el("td", { class: "task-claim" }, claim),
          el("td", null, String(task.attempt ?? "")),
          operator ? el("td", { class: "task-actions" }, task.status === "claimed" ? releaseControl(task) : null) : null);
        body.append(row);
        const draft = releaseDrafts.get(task.id);
        if (draft && task.status === "claimed") {
          const form = row.querySelector("form.release-form");
          const input = form.querySelector("input.release-reason");
          form.hidden = false;
          row.querySelector("button.release-claim").setAttribute("aria-expanded", "true");
          input.value = draft.text;
          if (draft.focused) focusTarget = input;
        }
      }
      releaseDrafts.clear();
      ui.tasks.replaceChildren(el("caption", { class: "sr-only" }, "Tasks of this ticket"), head, body);
      if (focusTarget) focusTarget.focus();
    }

    // "Release…" opens a small inline form asking for the reason; submit releases with force.
    function releaseControl(task) {
      const inputId = "release-reason-" + task.id;
      const input = el("input", { id: inputId, class: "release-reason", type: "text", required: true, autocomplete: "off", maxlength: "10000" });
      const submit = el("button", { type: "submit", class: "btn btn-danger btn-small" }, "Release claim");
      const form = el("form", { class: "release-form", hidden: true },
        el("label", { for: inputId }, "Reason for releasing " + task.claimed_by + "'s claim"),
        input,
        el("div", { class: "button-row" }, submit,
          el("button", {
            type: "button", class: "btn btn-small",
            onclick: () => { form.hidden = true; input.value = ""; open.setAttribute("aria-expanded", "false"); open.focus(); },
          }, "Cancel")));
      const open = el("button", {
        type: "button", class: "btn btn-small release-claim", "aria-expanded": "false",
        onclick: () => {
          form.hidden = !form.hidden;
          open.setAttribute("aria-expanded", String(!form.hidden));
          if (!form.hidden) input.focus();
        },
      }, "Release…");
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        const reason = input.value.trim();
        if (!reason) { input.focus(); return; }
        submit.disabled = true;
        try {
          await api("/api/v1/tasks/" + encodeURIComponent(task.id) + "/release", {
            method: "POST", body: { reason, force: true }, signal: page.signal,
          });
          form.hidden = true;
          input.value = "";
          flash("ok", "Released " + task.task_type + " (was held by " + task.claimed_by + ").");
          load();
        } catch (err) {
          flashError(err, "Releasing the claim failed");
        } finally {
          submit.disabled = false;
        }
      });
      return [open, form];
    }

    // Gates: results (status, blocking reasons, missing artifacts) and reviews (verdict, reasons).
    function renderGates(gates) {
      const results = gates.results || [];
      const reviews = gates.reviews || [];
      const list = (items, cls) => el("ul", { class: cls }, items.map((x) => el("li", null, String(x))));
      ui.gates.replaceChildren(
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
    function renderTimeline(entries) {
      ui.timeline.replaceChildren(...entries.map((e) => el("li", { class: "timeline-entry", "data-kind": e.kind },
        el("div", { class: "entry-head" },
          timeEl(e.at, null),
          badge(String(e.kind).replace(/_/g, " "), ["kind-badge", "kind-" + e.kind]),
          e.phase_id ? phaseBadge(e.phase_id) : null,
          e.forced ? badge("forced", ["forced"]) : null),
        el("p", { class: "summary" }, e.summary),
        el("p", { class: "actor" }, el("span", { class: "label" }, "by "), e.actor || "—"),
        e.reason ? el("p", { class: "reason" }, el("span", { class: "label" }, "reason "), e.reason) : null,
        e.correlation_id ? el("p", { class: "correlation" }, el("span", { class: "label" }, "correlation "), el("code", null, e.correlation_id)) : null)));
      if (!entries.length) ui.timeline.append(el("li", { class: "empty-note" }, "Nothing has happened yet."));
    }

    // Artifacts: type, path, collector, time, content as pretty JSON text.
    function renderArtifacts(artifacts) {
      if (!artifacts.length) {
        ui.artifacts.replaceChildren(emptyNote("No artifacts yet."));
        return;
      }
      ui.artifacts.replaceChildren(...artifacts.map((a) => el("article", { class: "artifact", "data-type": a.artifact_type },
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

    // Context: summary, then one <details> per phase (open ones stay open across reloads).
    function renderContext(context) {
      ui.summary.textContent = context.summary || "No summary yet.";
      ui.summaryMeta.replaceChildren(...(context.last_updated ? ["last updated ", timeEl(context.last_updated, "ago")] : []));
      const open = new Set(Array.from(ui.context.querySelectorAll("details[open]"), (d) => d.getAttribute("data-key")));
      const full = context.full_context && typeof context.full_context === "object" ? context.full_context : {};
      const rank = (key) => {
        const i = PHASES.findIndex((p) => key === p || key === phaseName(p) || key === phaseName(p) + "_phase");
        return i === -1 ? PHASES.length : i;
      };
      const keys = Object.keys(full).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
      if (!keys.length) {
        ui.context.replaceChildren(emptyNote("No context yet."));
        return;
      }
      ui.context.replaceChildren(...keys.map((key) => el("details", { class: "context-phase", "data-key": key, open: open.has(key) },
        el("summary", null, key.replace(/_/g, " ")),
        el("pre", { class: "pre" }, prettyJson(full[key])))));
    }

    function sectionError(container, err) {
      container.replaceChildren(el("p", { class: "form-error" }, "Could not load this part: " + (err.message || err)));
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
        const [ticket, timeline, tasks, gates, artifacts, context] = await Promise.allSettled([
          get("/api/v1/tickets/" + enc),
          get("/api/v1/board/tickets/" + enc + "/timeline"),
          get("/api/v1/tasks?" + qs({ ticket_id: ticketId, limit: 200 })),
          get("/api/v1/tickets/" + enc + "/gates"),
          get("/api/v1/tickets/" + enc + "/artifacts"),
          get("/api/v1/tickets/" + enc + "/context"),
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
        if (timeline.status === "fulfilled") renderTimeline(timeline.value.entries || []);
        else sectionError(ui.timeline, timeline.reason);
        if (tasks.status === "fulfilled") renderTasks(tasks.value.tasks || []);
        else sectionError(ui.tasks, tasks.reason);
        if (gates.status === "fulfilled") renderGates(gates.value);
        else sectionError(ui.gates, gates.reason);
        if (artifacts.status === "fulfilled") renderArtifacts(artifacts.value.artifacts || []);
        else sectionError(ui.artifacts, artifacts.reason);
        if (context.status === "fulfilled") renderContext(context.value);
        else if (context.reason instanceof ApiError && context.reason.status === 404) renderContext({});
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

  // ---------------------------------------------------------------------------------------------
  // Page: operations
  // ---------------------------------------------------------------------------------------------

  function renderOperations(page, main) {
    document.title = "Operations · phaseflow";
    setLiveStatus("polling");
    const operator = Boolean(state.me && state.me.operator);

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

  // ---------------------------------------------------------------------------------------------
  // Page: not found
  // ---------------------------------------------------------------------------------------------

  function renderNotFound(page, main) {
    document.title = "Not found · phaseflow";
    setLiveStatus("off");
    main.append(el("div", { class: "panel notice" },
      el("h1", { tabindex: "-1" }, "Page not found"),
      el("p", null, el("a", { href: "#/board" }, "Go to the board"))));
  }

  // ---------------------------------------------------------------------------------------------
  // Start-up
  // ---------------------------------------------------------------------------------------------

  function start() {
    document.getElementById("sign-out").addEventListener("click", signOut);
    // The skip link moves focus to <main> without touching the hash (the hash is the route).
    const skip = document.querySelector(".skip-link");
    if (skip) {
      skip.addEventListener("click", (event) => {
        event.preventDefault();
        document.getElementById("main").focus();
      });
    }
    window.addEventListener("hashchange", () => render(true));
    window.setInterval(refreshRelativeTimes, 15000);
    if (!parseRoute(location.hash)) history.replaceState(null, "", "#/board");
    updateSessionUi();
    render(false);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
