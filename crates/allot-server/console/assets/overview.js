// The overview: polls /console/overview.json every two seconds. The server answers counts as
// they are now; the rates (codes issued per second, the flash sale's time to sell-out) and
// the charts of the last ten minutes are kept here from what was polled, so the server keeps
// no history for a page that may be closed.
"use strict";

(() => {
  const root = document.getElementById("overview");
  if (!root || !root.dataset.poll) return;
  const WINDOW_MS = 10 * 60 * 1000;
  const issues = [];   // [ms, codes per second, all running campaigns]
  const orders = [];   // [ms, orders in the minute before]
  let last = null;

  const trim = (series, now) => { while (series.length && series[0][0] < now - WINDOW_MS) series.shift(); };

  function duration(seconds) {
    if (!Number.isFinite(seconds) || seconds < 0) return "–";
    if (seconds < 60) return `${Math.round(seconds)} s`;
    if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  function campaignRows(o, rates) {
    const table = document.getElementById("overview-campaigns");
    if (!table || !o.campaigns) return;
    const body = table.tBodies[0];
    while (body.firstChild) body.removeChild(body.firstChild);
    for (const c of o.campaigns) {
      const tr = body.insertRow();
      const name = tr.insertCell();
      const a = document.createElement("a");
      a.href = `/console/campaigns/${c.id}`;
      a.textContent = c.name;
      name.appendChild(a);
      for (const v of [Allot.fmt.int(c.issued), Allot.fmt.int(c.remaining), rates.has(c.id) ? Allot.fmt.int(Math.round(rates.get(c.id))) : "–"]) {
        const td = tr.insertCell();
        td.className = "num";
        td.textContent = v;
      }
    }
    if (!o.campaigns.length) {
      const td = body.insertRow().insertCell();
      td.colSpan = 4;
      td.textContent = "No campaign is issuing now.";
    }
  }

  Allot.poll(root.dataset.poll, 2000, (o) => {
    Allot.show(root, o);
    const rates = new Map();
    const seconds = last ? (o.now_ms - last.now_ms) / 1000 : 0;
    if (last && seconds > 0) {
      if (o.campaigns && last.campaigns) {
        const before = new Map(last.campaigns.map((c) => [c.id, c.issued]));
        let sum = 0;
        for (const c of o.campaigns) {
          if (before.has(c.id)) {
            const r = (c.issued - before.get(c.id)) / seconds;
            rates.set(c.id, r);
            sum += r;
          }
        }
        issues.push([o.now_ms, sum]);
      }
      const eta = document.getElementById("sale-eta");
      if (eta && o.sale && last.sale && o.sale.id === last.sale.id) {
        const rate = (o.sale.sold - last.sale.sold) / seconds;
        eta.textContent = o.sale.remaining === 0 ? "sold out" : rate > 0 ? duration(o.sale.remaining / rate) : "–";
      }
    }
    if (o.orders) orders.push([o.now_ms, o.orders.last_minute]);
    trim(issues, o.now_ms);
    trim(orders, o.now_ms);
    campaignRows(o, rates);
    const ci = document.getElementById("chart-issues");
    if (ci) Allot.chart(ci, issues, { label: (v) => `${Math.round(v)}/s` });
    const co = document.getElementById("chart-orders");
    if (co) Allot.chart(co, orders, { label: (v) => `${Math.round(v)}/min` });
    last = o;
  });
})();
