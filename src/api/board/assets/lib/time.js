// Durations and times as people read them ("5 min", "in phase 2 h 10 min", "3 d ago"), the
// <time> elements that show them, and a sleep that a page's signal cuts short.
//
// Imports only from lib/.

import { el } from "./dom.js";

// "45 s", "5 min", "2 h 10 min", "3 d 4 h".
export function fmtDuration(totalSeconds) {
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
export function timeEl(iso, mode) {
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

export function refreshRelativeTimes() {
  for (const node of document.querySelectorAll("time[data-rel]")) {
    node.textContent = relText(node.getAttribute("data-rel"), node.getAttribute("datetime"));
  }
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const id = setTimeout(resolve, ms);
    if (signal) signal.addEventListener("abort", () => { clearTimeout(id); resolve(); }, { once: true });
  });
}
