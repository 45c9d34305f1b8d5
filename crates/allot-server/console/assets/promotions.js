// Promotions pages: the example specs that fill the create form, the bound-codes count, and
// the preview (the cart sent to the API's evaluate, its answer written out line by line).
// Every value from the answer goes in as text (textContent), never as markup.
"use strict";

(() => {
  for (const button of document.querySelectorAll("button[data-example]")) {
    button.addEventListener("click", () => {
      const target = document.getElementById(button.dataset.for);
      if (!target) return;
      target.value = button.dataset.example;
      target.removeAttribute("aria-invalid");
      target.focus();
    });
  }

  const bind = document.getElementById("promotion-bind");
  if (bind) {
    bind.addEventListener("allot:done", (event) => {
      event.preventDefault();
      const n = event.detail.data ? event.detail.data.bound : 0;
      bind.querySelector('[role="status"]').textContent = `${Allot.fmt.int(n)} codes bound.`;
    });
  }
})();

(() => {
  const form = document.getElementById("promotion-preview");
  const result = document.getElementById("preview-result");
  if (!form || !result) return;
  const alert = form.querySelector('[role="alert"]');

  const ints = (raw) => raw.split(",").map((s) => s.trim()).filter(Boolean).map((s) => (/^-?\d+$/.test(s) ? Number(s) : s));
  const attributes = (raw) => {
    const out = {};
    for (const pair of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
      const at = pair.indexOf("=");
      if (at > 0) out[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
    }
    return out;
  };

  // The cart: the filled lines only (rows left empty are not lines), each value typed as
  // the API takes it; `rows` maps a line's index in the cart back to its row in the form.
  function cart() {
    const body = Allot.bodyOf(form);
    const rows = [];
    const lines = [];
    for (const row of form.querySelectorAll("tr[data-line]")) {
      const value = (name) => row.querySelector(`[name$=".${name}"]`).value.trim();
      if (!value("product_id") && !value("quantity")) continue;
      const line = {};
      for (const name of ["product_id", "quantity", "unit_price_minor"]) {
        const v = value(name);
        if (v !== "") line[name] = /^-?\d+$/.test(v) ? Number(v) : v;
      }
      if (value("category_ids")) line.category_ids = ints(value("category_ids"));
      if (value("attributes")) line.attributes = attributes(value("attributes"));
      rows.push(Number(row.dataset.line));
      lines.push(line);
    }
    body.lines = lines;
    return { body, rows };
  }

  const cell = (tr, text, cls) => {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    if (text instanceof Node) td.appendChild(text); else td.textContent = text;
    tr.appendChild(td);
    return td;
  };
  const link = (id, text) => {
    const a = document.createElement("a");
    a.href = `/console/promotions/${encodeURIComponent(id)}`;
    a.textContent = text;
    return a;
  };
  const clear = (el) => { while (el.firstChild) el.removeChild(el.firstChild); };

  function render(ev) {
    const money = (n) => Allot.fmt.money(n, ev.currency);
    const names = new Map(ev.applied.map((a) => [a.promotion_id, a.name]));
    const totals = document.getElementById("preview-totals");
    clear(totals);
    for (const [label, value] of [["Subtotal", ev.subtotal_minor], ["Discount", ev.discount_minor], ["Shipping", ev.shipping_minor],
      ["Shipping discount", ev.shipping_discount_minor], ["Total", ev.total_minor]]) {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = money(value);
      dd.dataset.total = label.toLowerCase().replace(/ /g, "_");
      totals.append(dt, dd);
    }
    const lines = document.querySelector("#preview-lines tbody");
    clear(lines);
    for (const l of ev.lines) {
      const tr = document.createElement("tr");
      cell(tr, String(l.index + 1), "num");
      cell(tr, String(l.product_id));
      cell(tr, Allot.fmt.int(l.quantity), "num");
      cell(tr, money(l.line_total_minor), "num");
      cell(tr, money(l.discount_minor), "num");
      cell(tr, money(l.total_minor), "num");
      const by = l.discounts.map((d) => `${names.get(d.promotion_id) || `#${d.promotion_id}`}: ${money(d.amount_minor)}`);
      cell(tr, by.length ? by.join("; ") : "–");
      lines.appendChild(tr);
    }
    const applied = document.querySelector("#preview-applied tbody");
    clear(applied);
    for (const a of ev.applied) {
      const tr = document.createElement("tr");
      cell(tr, link(a.promotion_id, a.name));
      cell(tr, a.code || "automatic", a.code ? "mono" : "");
      cell(tr, money(a.amount_minor), "num");
      cell(tr, money(a.shipping_minor), "num");
      cell(tr, a.capped_by_budget ? "cut to what was left" : "–");
      applied.appendChild(tr);
    }
    if (!ev.applied.length) {
      const tr = document.createElement("tr");
      cell(tr, "None.").colSpan = 5;
      applied.appendChild(tr);
    }
    const refused = document.querySelector("#preview-refused tbody");
    clear(refused);
    for (const r of ev.refused) {
      const tr = document.createElement("tr");
      cell(tr, r.code || "automatic", r.code ? "mono" : "");
      cell(tr, r.promotion_id ? link(r.promotion_id, `#${r.promotion_id}`) : "–");
      cell(tr, r.reason, "mono");
      cell(tr, r.message || "");
      tr.dataset.reason = r.reason;
      refused.appendChild(tr);
    }
    if (!ev.refused.length) {
      const tr = document.createElement("tr");
      cell(tr, "None.").colSpan = 4;
      refused.appendChild(tr);
    }
    result.hidden = false;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    for (const el of form.querySelectorAll('[aria-invalid="true"]')) el.removeAttribute("aria-invalid");
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const { body, rows } = cart();
      const res = await Allot.api("POST", form.dataset.evaluate, body);
      if (res.ok) { render(res.data); return; }
      result.hidden = true;
      // `lines.1.quantity` counts the cart's lines: name the form's row it came from.
      const err = res.data && res.data.error ? res.data.error : null;
      if (err && err.field) {
        const m = /^lines\.(\d+)\.(.+)$/.exec(err.field);
        if (m && rows[Number(m[1])] !== undefined) err.field = `lines.${rows[Number(m[1])]}.${m[2]}`;
      }
      Allot.showError(form, res);
    } catch (e) {
      alert.textContent = `The request failed: ${e.message}`;
    } finally {
      button.disabled = false;
    }
  });
})();
