// phaseflow board: the single-page app served at "/", and the module index.html loads.
//
// Plain ES modules, no framework, no build step: each file is served as it is written, from
// the table of assets in src/api/board/mod.rs. The page runs under a strict
// Content-Security-Policy, so all DOM is built from elements and text nodes (lib/dom.js),
// never from HTML strings. This module wires the parts together: the routes and their pages,
// the end of a session, the header's controls and the clock of relative times.
//
// Modules: lib/ (DOM, time, text, badges; imports nothing outside lib/), api.js (the
// token and the API calls), stream.js (the live events), session.js (who is signed in),
// workflow.js (phases and priorities from the server), flash.js (messages), router.js (the
// routes and each page's lifetime) and pages/ (one module per page).

import { whenSessionEnds } from "./api.js";
import { refreshRelativeTimes } from "./lib/time.js";
import { endSession, signOut, startRouter } from "./router.js";
import { renderAgents } from "./pages/agents.js";
import { renderBoard } from "./pages/board.js";
import { renderNotFound } from "./pages/not-found.js";
import { renderOperations } from "./pages/operations.js";
import { renderSignIn } from "./pages/sign-in.js";
import { renderTicket } from "./pages/ticket.js";

const RELATIVE_TIMES_MS = 15000; // how often "5 min ago" and its kind are brought up to date

whenSessionEnds(endSession);
document.getElementById("sign-out").addEventListener("click", signOut);

// The skip link moves focus to <main> without touching the hash (the hash is the route).
const skip = document.querySelector(".skip-link");
if (skip) {
  skip.addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("main").focus();
  });
}
window.setInterval(refreshRelativeTimes, RELATIVE_TIMES_MS);

startRouter([
  { name: "sign-in", path: "sign-in", render: renderSignIn },
  { name: "board", path: "board", render: renderBoard },
  { name: "ticket", path: /^tickets\/([^/]+)$/, nav: "#/board", render: renderTicket },
  { name: "operations", path: "operations", render: renderOperations },
  { name: "agents", path: "agents", render: renderAgents },
], { render: renderNotFound });
