// Values as text: short ids, JSON for <pre> blocks, query strings. Everything returned here is
// shown through text nodes (lib/dom.js), never parsed as markup.
//
// Imports nothing.

export function shortId(id) {
  return id ? String(id).slice(0, 8) : "—";
}

// Pretty JSON for <pre> blocks (strings are shown as they are).
export function prettyJson(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  try { return JSON.stringify(value, null, 2); } catch (_) { return String(value); }
}

// Query string from an object, leaving out empty values.
export function qs(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  return search.toString();
}
