// Routing between the pages by the location's hash ("#/board", "#/tickets/{id}",
// "#/operations", "#/agents", "#/sign-in"), and each page's lifetime. main.js gives the table
// of routes; this module imports no page. Before the first page that needs a session it asks
// who is signed in (GET /api/v1/me) and what the workflow is (workflow.js).

import { api, getToken, isQuiet, setToken } from "./api.js";
import { flash } from "./flash.js";
import { el, emptyNote } from "./lib/dom.js";
import { session, updateSessionUi } from "./session.js";
import { loadWorkflow, workflowLoaded } from "./workflow.js";

const HOME = "#/board";
const SIGN_IN = "sign-in";

let routes = []; // [{name, path, nav, render}], see startRouter
let notFound = null;
let current = null; // the shown page's lifetime (see createPage)

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
  if (current) current.close();
  current = null;
}

// The route of a hash with its parameters; the not-found page for an unknown path; null for an
// in-page anchor (not a route).
function parseRoute(hash) {
  if (!hash || hash === "#" || hash === "#/") hash = HOME;
  if (!hash.startsWith("#/")) return null;
  const path = hash.slice(2).split("?")[0];
  for (const route of routes) {
    if (typeof route.path === "string") {
      if (path === route.path) return { route, params: [] };
      continue;
    }
    const match = route.path.exec(path);
    if (!match) continue;
    try {
      return { route, params: match.slice(1).map(decodeURIComponent) };
    } catch (_) { /* bad escape: not this route */ }
  }
  return { route: notFound, params: [] };
}

export function ticketHref(id) {
  return "#/tickets/" + encodeURIComponent(id);
}

// Shows the page of `hash` (again, when it is the current one).
export function go(hash) {
  if (location.hash === hash) render(true);
  else location.hash = hash;
}

function markNav(route) {
  const href = route.nav || "#/" + route.name;
  for (const link of document.querySelectorAll(".mainnav a")) {
    if (link.getAttribute("href") === href) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

// The session ended (401) or there is no token: forget it and show the sign-in page.
export function endSession(message) {
  setToken(null);
  session.me = null;
  updateSessionUi();
  const found = parseRoute(location.hash);
  if (found && found.route.name !== SIGN_IN) session.afterSignIn = location.hash || HOME;
  session.signInNote = message || "";
  closePage();
  if (message) flash("error", message);
  go("#/" + SIGN_IN);
}

export function signOut() {
  setToken(null);
  session.me = null;
  session.afterSignIn = HOME;
  session.signInNote = "";
  updateSessionUi();
  closePage();
  flash("ok", "Signed out.");
  go("#/" + SIGN_IN);
}

// Who is signed in decides whether operator controls render, and the workflow names the
// phases and priorities: both are asked once per session.
async function loadSession(page) {
  const [me] = await Promise.all([
    session.me || api("/api/v1/me", { signal: page.signal }),
    workflowLoaded() ? null : loadWorkflow(page.signal),
  ]);
  session.me = me;
}

// Renders the page of the current hash. `moveFocus` focuses the page heading (route changes).
async function render(moveFocus) {
  let found = parseRoute(location.hash);
  if (!found) return; // an in-page anchor, not a route
  closePage();
  const main = document.getElementById("main");
  main.replaceChildren();
  main.removeAttribute("aria-busy");

  if (!getToken() && found.route.name !== SIGN_IN) {
    session.afterSignIn = location.hash || HOME;
    history.replaceState(null, "", "#/" + SIGN_IN);
    found = parseRoute("#/" + SIGN_IN);
  }
  const page = createPage(found.route.name);
  current = page;
  markNav(found.route);

  if (found.route.name !== SIGN_IN && (!session.me || !workflowLoaded())) {
    main.setAttribute("aria-busy", "true");
    main.append(emptyNote("Checking your session…"));
    try {
      await loadSession(page);
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

  found.route.render(page, main, ...found.params);
  if (moveFocus) {
    const heading = main.querySelector("[data-autofocus]") || main.querySelector("h1");
    if (heading) heading.focus({ preventScroll: false });
  }
}

// Starts routing. `table`: one entry per page, {name, path (a string, or a RegExp whose groups
// are the page's parameters), nav (the main navigation link it marks; "#/" + name by
// default), render(page, main, ...params)}; `fallback` renders any other path.
export function startRouter(table, fallback) {
  routes = table;
  notFound = Object.assign({ name: "not-found" }, fallback);
  window.addEventListener("hashchange", () => render(true));
  if (!parseRoute(location.hash)) history.replaceState(null, "", HOME);
  updateSessionUi();
  render(false);
}
