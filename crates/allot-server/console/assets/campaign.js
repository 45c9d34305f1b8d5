// A campaign's page: polls its progress every second and draws the issue rate. The server
// answers counts only; the rate and its chart are kept here, from what was polled (the last
// five minutes), so the server does no per-second bookkeeping for a page that may be closed.
"use strict";

(() => {
  const root = document.getElementById("campaign-progress");
  if (!root || !root.dataset.progress) return;
  const bar = document.getElementById("campaign-bar");
  const rate = document.getElementById("campaign-rate");
  const svg = document.getElementById("campaign-chart");
  const WINDOW_MS = 5 * 60 * 1000;
  const points = [];
  let last = null;

  Allot.poll(root.dataset.progress, 1000, (p) => {
    Allot.show(root, p);
    if (bar) { bar.max = p.total; bar.value = p.issued; }
    if (last && p.now_ms > last.now_ms) {
      const perSecond = ((p.issued - last.issued) * 1000) / (p.now_ms - last.now_ms);
      points.push([p.now_ms, perSecond]);
      while (points.length && points[0][0] < p.now_ms - WINDOW_MS) points.shift();
      if (rate) rate.textContent = Allot.fmt.int(Math.round(perSecond));
      if (svg) Allot.chart(svg, points, { label: (v) => `${Math.round(v)}/s` });
    }
    last = p;
  });
})();
