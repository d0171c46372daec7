// Who is signed in, and where the sign-in page goes next; shown in the header (#whoami,
// #sign-out). The token itself is kept by api.js.

export const session = {
  me: null, // {agent, operator} from GET /api/v1/me
  afterSignIn: "#/board", // where sign-in goes next
  signInNote: "", // why the sign-in page is shown (session ended)
};

// Whether the signed-in agent may act (force, release, replay): the pages show those controls
// only then, and the API refuses everyone else anyway.
export function isOperator() {
  return Boolean(session.me && session.me.operator);
}

export function updateSessionUi() {
  const who = document.getElementById("whoami");
  const out = document.getElementById("sign-out");
  if (session.me) {
    who.textContent = session.me.agent + " · " + (session.me.operator ? "operator" : "agent");
    out.hidden = false;
  } else {
    who.textContent = "";
    out.hidden = true;
  }
}
