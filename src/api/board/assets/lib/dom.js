// Building the page from elements and text nodes, never from HTML strings: titles, reasons,
// artifacts, headers and bodies are agent input and are always shown as text. The page runs
// under a Content-Security-Policy without 'unsafe-inline', so no inline style either.
//
// Imports nothing: every other module may use it.

// el(tag, attrs, ...children): an element with attributes and children. Strings become text
// nodes; `on<event>` functions become listeners; `class` may be an array; false/null skip.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") {
        node.className = Array.isArray(value) ? value.filter(Boolean).join(" ") : value;
      } else if (key === "for") {
        node.htmlFor = value;
      } else if (key.startsWith("on") && typeof value === "function") {
        node.addEventListener(key.slice(2), value);
      } else if (key === "style") {
        throw new Error("style attributes are blocked by the CSP; use a class");
      } else {
        node.setAttribute(key, value === true ? "" : String(value));
      }
    }
  }
  appendChildren(node, children);
  return node;
}

function appendChildren(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) appendChildren(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

// Replaces the children of `node` (null/false children are skipped, unlike replaceChildren).
export function fill(node, ...children) {
  node.replaceChildren();
  appendChildren(node, children);
  return node;
}

// A section of a page: a panel with a heading and a body.
export function panel(title, body, extraClass) {
  const id = "h-" + title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  return el("section", { class: ["panel", extraClass], "aria-labelledby": id },
    el("h2", { id, class: "panel-title" }, title), body);
}

// A muted placeholder line ("No tasks yet.").
export function emptyNote(text) {
  return el("p", { class: "empty-note" }, text);
}

// Keeps keyboard focus across a re-render of `container`: remembers the focused element by
// the nearest [data-key] ancestor and its class, and focuses the same one afterwards.
export function keepFocus(container, render) {
  const active = document.activeElement;
  let key = null;
  if (active && container.contains(active)) {
    const holder = active.closest("[data-key]");
    key = holder ? { id: holder.getAttribute("data-key"), cls: active.className } : null;
  }
  render();
  if (!key) return;
  for (const holder of container.querySelectorAll("[data-key]")) {
    if (holder.getAttribute("data-key") !== key.id) continue;
    const target = Array.from(holder.querySelectorAll("button, a, input, select, summary"))
      .find((node) => node.className === key.cls);
    if (target) target.focus();
    return;
  }
}
