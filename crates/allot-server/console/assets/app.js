// Allot console: what every page shares. No framework: the pages are rendered by the server;
// this file sends their forms to the REST API (the same calls, rules and errors as any client)
// and keeps live figures fresh. Loaded with `defer`; the Content-Security-Policy allows no
// inline script, so pages configure it through data- attributes only.
"use strict";

const Allot = (() => {
  const csrf = () => {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  };

  // Calls the API as the signed-in user: the session cookie goes along (same origin), and
  // the CSRF token proves the call comes from a page of this console.
  async function api(method, url, body, extraHeaders) {
    const headers = Object.assign({ "X-CSRF-Token": csrf(), Accept: "application/json" }, extraHeaders || {});
    let payload;
    if (body !== undefined && body !== null) {
      if (typeof body === "string" || body instanceof Blob) {
        payload = body;
      } else {
        headers["Content-Type"] = "application/json";
        payload = JSON.stringify(body);
      }
    }
    const res = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = text; }
    }
    if (res.status === 401) {
      window.location.assign("/?next=" + encodeURIComponent(window.location.pathname + window.location.search));
    }
    return { ok: res.ok, status: res.status, data, headers: res.headers };
  }

  // A form's fields as the JSON body of its call. Names are paths (`lines.0.product_id`,
  // `price.amount_minor`); `data-type` says what a value is: int, number, bool, json, list
  // (comma separated), datetime (a datetime-local input, sent as RFC 3339 in UTC); an empty
  // field is left out unless it carries `data-keep-empty`.
  function bodyOf(form) {
    const body = {};
    for (const el of form.elements) {
      if (!el.name || el.disabled || el.dataset.path !== undefined || el.name.startsWith("_")) continue;
      if ((el.type === "checkbox" || el.type === "radio") && !el.checked && el.dataset.type !== "bool") continue;
      let v = el.type === "checkbox" && el.dataset.type === "bool" ? el.checked : el.value;
      if (v === "" && el.dataset.keepEmpty === undefined) continue;
      switch (el.dataset.type) {
        case "int": v = Number.parseInt(v, 10); if (Number.isNaN(v)) v = el.value; break;
        case "number": v = Number(v); if (Number.isNaN(v)) v = el.value; break;
        case "bool": v = v === true || v === "true"; break;
        case "json":
          if (el.dataset.spread !== undefined) {
            // The whole body written as JSON (a promotion's spec): its fields are the body's.
            let parsed;
            try { parsed = JSON.parse(v); } catch (e) { throw fieldError(el.name, `not valid JSON (${e.message})`); }
            if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw fieldError(el.name, "must be a JSON object");
            Object.assign(body, parsed);
            continue;
          }
          try { v = JSON.parse(v); } catch (_) { /* sent as typed: the API names it */ }
          break;
        case "list": v = String(v).split(",").map((s) => s.trim()).filter(Boolean); break;
        case "datetime": { const d = new Date(v); if (!Number.isNaN(d.getTime())) v = d.toISOString().replace(/\.000Z$/, "Z"); break; }
        default: break;
      }
      setPath(body, el.name.split("."), v);
    }
    return body;
  }

  // An error of a field found before anything is sent, shown as the API's would be.
  function fieldError(field, message) {
    const e = new Error(`${field}: ${message}`);
    e.field = field;
    return e;
  }

  function setPath(obj, parts, v) {
    let o = obj;
    for (let i = 0; i < parts.length - 1; i++) {
      const key = parts[i];
      const nextIsIndex = /^\d+$/.test(parts[i + 1]);
      if (o[key] === undefined) o[key] = nextIsIndex ? [] : {};
      o = o[key];
    }
    o[parts[parts.length - 1]] = v;
  }

  // `/api/v1/orders/{order_id}/status`: each {name} from the form's field of that name
  // (marked data-path, so it is not sent in the body), or from `values`.
  function fill(template, form, values) {
    return template.replace(/\{([a-z_0-9.]+)\}/g, (_, name) => {
      let v;
      if (values) v = name.split(".").reduce((o, k) => (o == null ? undefined : o[k]), values);
      if (v === undefined && form) {
        const el = form.querySelector(`[name="${name}"]`);
        if (el) v = el.value;
      }
      return encodeURIComponent(v === undefined || v === null ? "" : String(v));
    });
  }

  function showError(form, res) {
    const alert = form.querySelector('[role="alert"]');
    const err = res.data && res.data.error ? res.data.error : null;
    const field = err && err.field ? err.field : null;
    let message = err ? err.message : `The server answered ${res.status}.`;
    if (field && !message.includes(field)) message = `${field}: ${message}`;
    for (const el of form.querySelectorAll('[aria-invalid="true"]')) el.removeAttribute("aria-invalid");
    if (alert) alert.textContent = message;
    if (field) {
      // A field of a body written as JSON (`conditions.min_subtotal_minor`) is in its textarea.
      const el = form.querySelector(`[name="${field}"]`) || form.querySelector(`[name$=".${field.split(".").pop()}"]`) ||
        form.querySelector("[data-spread]");
      if (el) {
        el.setAttribute("aria-invalid", "true");
        if (alert && alert.id) el.setAttribute("aria-describedby", alert.id);
        el.focus();
      }
    }
  }

  // Forms with `data-api="/api/v1/..."` (and `data-method`, POST by default) are sent to the
  // API. On success: `data-then` (a URL template filled from the answer) is opened, or the
  // page reloads (`data-then="reload"`), or the form's status element says `data-done`.
  async function submit(form, event) {
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const submitter = event.submitter;
    const buttons = form.querySelectorAll("button");
    const status = form.querySelector('[role="status"]');
    const alert = form.querySelector('[role="alert"]');
    if (alert) alert.textContent = "";
    if (status) status.textContent = "";
    for (const b of buttons) b.disabled = true;
    try {
      const body = form.dataset.body === "none" ? null : bodyOf(form);
      if (submitter && submitter.name && !submitter.name.startsWith("_")) setPath(body, submitter.name.split("."), submitter.value);
      const method = (form.dataset.method || "POST").toUpperCase();
      const url = fill(form.dataset.api, form, null);
      const headers = method === "POST" ? { "Idempotency-Key": crypto.randomUUID() } : {};
      const res = await api(method, url, method === "GET" || method === "DELETE" ? null : body, headers);
      if (!res.ok) { showError(form, res); return; }
      // A page's script that shows the answer itself cancels the event: no "Done." then.
      const shown = !form.dispatchEvent(new CustomEvent("allot:done", { detail: res, bubbles: true, cancelable: true }));
      const then = form.dataset.then;
      if (then === "reload") { window.location.reload(); return; }
      if (then) { window.location.assign(fill(then, form, res.data)); return; }
      if (status && !shown) status.textContent = form.dataset.done || "Done.";
      if (form.dataset.reset !== undefined) form.reset();
    } catch (e) {
      if (e.field) showError(form, { status: 0, data: { error: { field: e.field, message: e.message } } });
      else if (alert) alert.textContent = `The request failed: ${e.message}`;
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  // Asks `url` every `ms` while the page is visible; `fn` gets the JSON.
  function poll(url, ms, fn) {
    let timer = null;
    const tick = async () => {
      timer = null;
      try {
        const res = await api("GET", url);
        if (res.ok) fn(res.data);
      } catch (_) { /* the next tick tries again */ }
      if (!document.hidden) timer = window.setTimeout(tick, ms);
    };
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && timer === null) tick();
    });
    tick();
  }

  const SVG = "http://www.w3.org/2000/svg";
  // A line chart of `points` ([[x, y], ...], x ascending) into an <svg class="chart">.
  function chart(svg, points, opts) {
    const o = Object.assign({ yMin: 0, label: (v) => String(Math.round(v)) }, opts || {});
    const w = 600, h = 140, pad = 28;
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("preserveAspectRatio", "none");
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const axis = document.createElementNS(SVG, "line");
    axis.setAttribute("class", "axis");
    axis.setAttribute("x1", pad); axis.setAttribute("x2", w); axis.setAttribute("y1", h - pad / 2); axis.setAttribute("y2", h - pad / 2);
    svg.appendChild(axis);
    if (!points.length) return;
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
    const y0 = Math.min(o.yMin, ...ys), y1 = Math.max(...ys, y0 + 1);
    const X = (x) => pad + ((x - x0) / (x1 - x0)) * (w - pad - 4);
    const Y = (y) => h - pad / 2 - ((y - y0) / (y1 - y0)) * (h - pad);
    const d = points.map((p, i) => `${i ? "L" : "M"}${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join("");
    const area = document.createElementNS(SVG, "path");
    area.setAttribute("class", "area");
    area.setAttribute("d", `${d}L${X(xs[xs.length - 1]).toFixed(1)},${h - pad / 2}L${X(xs[0]).toFixed(1)},${h - pad / 2}Z`);
    svg.appendChild(area);
    const line = document.createElementNS(SVG, "path");
    line.setAttribute("class", "line");
    line.setAttribute("d", d);
    svg.appendChild(line);
    const top = document.createElementNS(SVG, "text");
    top.setAttribute("x", 2); top.setAttribute("y", 12);
    top.textContent = o.label(y1);
    svg.appendChild(top);
  }

  const ZERO_DECIMALS = new Set(["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"]);
  const THREE_DECIMALS = new Set(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"]);
  const fmt = {
    int: (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US")),
    time: (ms) => (ms ? new Date(ms).toLocaleString() : "–"),
    // In the currency's own decimals (ISO 4217), as the server's pages write it.
    money: (minor, currency) => {
      const digits = ZERO_DECIMALS.has(currency) ? 0 : THREE_DECIMALS.has(currency) ? 3 : 2;
      const n = (Number(minor) / 10 ** digits).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
      return `${n} ${currency || ""}`.trim();
    },
  };

  // Sets the text of every element `[data-field="name"]` inside `root` from `values`.
  function show(root, values) {
    for (const el of root.querySelectorAll("[data-field]")) {
      const v = el.dataset.field.split(".").reduce((o, k) => (o == null ? undefined : o[k]), values);
      if (v !== undefined) el.textContent = el.dataset.format === "raw" ? String(v) : fmt.int(v);
    }
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.api) submit(form, event);
    else if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });

  return { api, poll, chart, fmt, show, fill, bodyOf, showError };
})();
window.Allot = Allot;
