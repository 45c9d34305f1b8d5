// The events page's live tail: follows the API's server-sent stream from the log's end (the
// session cookie goes along: same origin), newest first, at most KEEP rows; Pause closes the
// stream and Resume reopens it after the last seq seen, so nothing is missed or repeated.
"use strict";

(() => {
  const list = document.getElementById("tail");
  const toggle = document.getElementById("tail-toggle");
  const state = document.getElementById("tail-state");
  if (!list || !toggle || !window.EventSource) return;
  const KEEP = 100;
  let after = list.dataset.after || "0";
  let source = null;

  const add = (e) => {
    after = e.lastEventId || after;
    let body = {};
    try { body = JSON.parse(e.data); } catch (_) { /* shown without its payload */ }
    const li = document.createElement("li");
    const seq = document.createElement("span");
    seq.className = "badge";
    seq.textContent = `#${body.seq || e.lastEventId}`;
    const kind = document.createElement("code");
    kind.textContent = e.type;
    const who = document.createElement("span");
    who.className = "sub";
    who.textContent = `${body.actor || ""} · ${Allot.fmt.time(body.occurred_at_ms)}`;
    const payload = document.createElement("span");
    payload.className = "mono";
    payload.textContent = body.payload ? JSON.stringify(body.payload) : "";
    li.append(seq, " ", kind, " ", who, " ", payload);
    list.prepend(li);
    while (list.children.length > KEEP) list.lastElementChild.remove();
  };

  const open = () => {
    source = new EventSource(`${list.dataset.stream}?after=${encodeURIComponent(after)}`);
    // Each event is named after its type, so each type gets a listener.
    for (const t of (list.dataset.types || "").split(",")) if (t) source.addEventListener(t, add);
    source.onopen = () => { state.textContent = "Following the log."; };
    source.onerror = () => { state.textContent = "Reconnecting…"; };
  };

  toggle.addEventListener("click", () => {
    if (source) {
      source.close();
      source = null;
      toggle.textContent = "Resume";
      state.textContent = "Paused.";
    } else {
      open();
      toggle.textContent = "Pause";
    }
  });
  open();
})();
