// The page for a path no route knows.

import { el } from "../lib/dom.js";
import { setLiveStatus } from "../stream.js";

export function renderNotFound(page, main) {
  document.title = "Not found · phaseflow";
  setLiveStatus("off");
  main.append(el("div", { class: "panel notice" },
    el("h1", { tabindex: "-1" }, "Page not found"),
    el("p", null, el("a", { href: "#/board" }, "Go to the board"))));
}
