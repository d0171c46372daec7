// The sign-in page: asks for an API token, checks it with GET /api/v1/me and keeps it in the
// tab's session storage (api.js), then goes where the visitor was headed.

import { errorFrom, setToken } from "../api.js";
import { flash } from "../flash.js";
import { el } from "../lib/dom.js";
import { go } from "../router.js";
import { session, updateSessionUi } from "../session.js";
import { setLiveStatus } from "../stream.js";

export function renderSignIn(page, main) {
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
      session.me = me;
      session.signInNote = "";
      input.value = "";
      updateSessionUi();
      flash("ok", "Signed in as " + me.agent + ".");
      const target = session.afterSignIn && session.afterSignIn !== "#/sign-in" ? session.afterSignIn : "#/board";
      session.afterSignIn = "#/board";
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
      session.signInNote ? el("p", { class: "notice-text" }, session.signInNote) : null,
      session.me ? el("p", { class: "help" }, "Signed in as " + session.me.agent + "; a new token replaces it.") : null,
      form)));
  input.focus();
}
