// The live stream of published events (GET /api/v1/stream, server-sent events), read with
// fetch and a ReadableStream reader: EventSource cannot send the Authorization header. Shows
// the stream's state in the header (#live-status).

import { authFetch, errorFrom, SessionEnded } from "./api.js";
import { qs } from "./lib/text.js";
import { sleep } from "./lib/time.js";

const BACKOFF_MIN_MS = 500; // reconnect delay, doubled up to the max
const BACKOFF_MAX_MS = 10000;

// Parser of the event-stream format: feed it text chunks; it calls onMessage({event, data, id})
// at each blank line. Lines end with \n, \r\n or \r; lines starting with ":" are comments.
function createSseParser(onMessage) {
  let buffer = "";
  let eventType = "";
  let dataLines = [];
  let lastId = "";

  function handleLine(line) {
    if (line === "") {
      if (dataLines.length) {
        onMessage({ event: eventType || "message", data: dataLines.join("\n"), id: lastId });
      }
      eventType = "";
      dataLines = [];
      return;
    }
    if (line[0] === ":") return; // comment (keepalive)
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1);
    if (field === "event") eventType = value;
    else if (field === "data") dataLines.push(value);
    else if (field === "id") lastId = value;
    // "retry" and unknown fields are ignored: the backoff of openStream decides the delay.
  }

  return function push(chunk) {
    buffer += chunk;
    let pos = 0;
    while (pos < buffer.length) {
      const lf = buffer.indexOf("\n", pos);
      const cr = buffer.indexOf("\r", pos);
      const end = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
      if (end === -1) break;
      if (buffer[end] === "\r" && end === buffer.length - 1) break; // maybe "\r\n" split in two
      handleLine(buffer.slice(pos, end));
      pos = end + (buffer[end] === "\r" && buffer[end + 1] === "\n" ? 2 : 1);
    }
    buffer = buffer.slice(pos);
  };
}

// Shows the stream state in #live-status: "live", "reconnecting", "connecting", "polling"
// (a page that refreshes itself instead) or "off".
export function setLiveStatus(mode) {
  const node = document.getElementById("live-status");
  const texts = {
    live: "live", reconnecting: "reconnecting…", connecting: "connecting…",
    polling: "auto refresh 5 s", off: "",
  };
  node.classList.remove("live-live", "live-reconnecting", "live-connecting", "live-polling", "live-off");
  node.classList.add("live-" + mode);
  node.textContent = texts[mode];
}

// Keeps a stream open for the page's lifetime: onEvent(cloudevent) per event, onReload() on
// `resync` and once a connection is back after it ended or failed (the page reloads then,
// after the new stream is open, so nothing between the two is missed). Reconnects with a
// delay growing from 0.5 s to 10 s; stops when the page's signal aborts.
export function openStream(page, { ticketId, onEvent, onReload }) {
  const path = "/api/v1/stream" + (ticketId ? "?" + qs({ ticket_id: ticketId }) : "");
  let delay = BACKOFF_MIN_MS;
  let missed = false; // a connection ended or failed: reload once the next one is open

  function dispatch(message) {
    if (page.signal.aborted) return;
    if (message.event === "cloudevent") {
      let event;
      try { event = JSON.parse(message.data); } catch (_) { return; }
      if (event && typeof event === "object") onEvent(event);
    } else if (message.event === "resync") {
      onReload();
    }
  }

  async function run() {
    setLiveStatus("connecting");
    while (!page.signal.aborted) {
      try {
        const response = await authFetch(path, {
          headers: { Accept: "text/event-stream" }, signal: page.signal,
        });
        if (!response.ok || !response.body) throw await errorFrom(response);
        setLiveStatus("live");
        if (missed) {
          missed = false;
          onReload();
        }
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        const push = createSseParser(dispatch);
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          delay = BACKOFF_MIN_MS; // bytes arrived: the connection works
          push(decoder.decode(value, { stream: true }));
        }
      } catch (err) {
        if (err instanceof SessionEnded || page.signal.aborted) return;
        // network error, 5xx, 403: reconnect below
      }
      if (page.signal.aborted) return;
      missed = true;
      setLiveStatus("reconnecting");
      await sleep(delay, page.signal);
      delay = Math.min(delay * 2, BACKOFF_MAX_MS);
    }
  }

  run();
}
