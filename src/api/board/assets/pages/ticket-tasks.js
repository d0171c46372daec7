// The tasks table of a ticket's page: type, phase, description, status, dependencies (by
// type), claim and attempt, and for operators a "Release…" control on each claimed task that
// releases the claim (with force and a reason). An open release form keeps what was typed
// across the reloads live events cause.

import { api } from "../api.js";
import { flash, flashError } from "../flash.js";
import { badge, statusBadge } from "../lib/badges.js";
import { el, emptyNote } from "../lib/dom.js";
import { prettyJson, shortId } from "../lib/text.js";
import { timeEl } from "../lib/time.js";
import { phaseName } from "../workflow.js";

// The table (#tasks) and render(tasks), which fills it; `reload()` is called after a release.
export function tasksTable(page, operator, reload) {
  const table = el("table", { id: "tasks", class: "data-table" });
  const releaseDrafts = new Map(); // task id -> {text, focused}: open release forms survive reloads

  // Tasks table: type, phase, description, status, dependencies (by type), claim, release.
  function renderTasks(tasks) {
    // Remember open release forms (text and focus) so a reload does not lose what is typed.
    for (const row of table.querySelectorAll("tr[data-task-id]")) {
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
    table.replaceChildren(el("caption", { class: "sr-only" }, "Tasks of this ticket"), head, body);
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
        reload();
      } catch (err) {
        flashError(err, "Releasing the claim failed");
      } finally {
        submit.disabled = false;
      }
    });
    return [open, form];
  }

  return { table, render: renderTasks };
}
