// The workflow the server runs, from GET /api/v1/workflow: the phases in order with their
// names, and the priorities. The page repeats none of them: it asks once (router.js does,
// before the first page that needs a session) and keeps the answer while the tab is open.

import { api } from "./api.js";
import { badge } from "./lib/badges.js";

let workflow = null; // {phases: [{phase_id, name}], priorities: [..]}

export function workflowLoaded() {
  return workflow !== null;
}

export async function loadWorkflow(signal) {
  const answer = await api("/api/v1/workflow", { signal });
  workflow = {
    phases: (answer.phases || []).map((p) => ({ phase_id: p.phase_id, name: p.name })),
    priorities: Array.isArray(answer.priorities) ? answer.priorities : [],
  };
}

// Every priority, lowest first.
export function priorities() {
  return workflow ? workflow.priorities : [];
}

// The phase's name ("requirements"); the id itself for a phase the workflow does not list.
export function phaseName(phaseId) {
  if (!phaseId) return "—";
  const phase = workflow && workflow.phases.find((p) => p.phase_id === phaseId);
  return phase ? phase.name : String(phaseId);
}

// Where the phase comes in the workflow's order (a phase it does not list comes last).
// Context keys ("requirements_phase") are ranked as their phase.
export function phaseRank(key) {
  const phases = workflow ? workflow.phases : [];
  const i = phases.findIndex((p) => key === p.phase_id || key === p.name || key === p.name + "_phase");
  return i === -1 ? phases.length : i;
}

export function phaseBadge(phaseId) {
  return badge(phaseName(phaseId), ["phase-badge"]);
}
