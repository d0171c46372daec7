// The flash region (#flash): the result of an action or an error, announced politely. Success
// messages go away after 8 s; errors stay until dismissed.

import { ApiError, isQuiet } from "./api.js";
import { el } from "./lib/dom.js";

let flashTimer = 0;

export function flash(kind, message, reasons) {
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

// An error of an API call, with what was being done; quiet errors (see isQuiet) say nothing.
export function flashError(err, what) {
  if (isQuiet(err)) return;
  const prefix = what ? what + ": " : "";
  if (err instanceof ApiError) flash("error", prefix + err.message, err.reasons);
  else flash("error", prefix + "cannot reach phaseflow (" + ((err && err.message) || err) + ")");
}
