// Badges: a short label whose colour (from app.css) always comes with text saying the same.
//
// Imports only from lib/. The phase badge lives in workflow.js, which knows the phases' names.

import { el } from "./dom.js";

export function badge(text, classes) {
  return el("span", { class: ["badge"].concat(classes || []) }, text);
}

export function priorityBadge(priority, extra) {
  const p = String(priority || "").toLowerCase();
  return badge(priority || "—", ["priority-" + p, extra]);
}

export function gateBadge(status) {
  return badge(status ? "gate " + status : "no gate result", ["gate-" + (status || "none")]);
}

export function statusBadge(status, extra) {
  return badge(status, ["status-" + status, extra]);
}
