// Flash sales: the current sale's counter, polled every two seconds.
"use strict";

(() => {
  const root = document.getElementById("sale-current");
  if (!root || !root.dataset.poll || !document.getElementById("sale-sold")) return;
  const bar = document.getElementById("sale-bar");
  Allot.poll(root.dataset.poll, 2000, (s) => {
    if (!s) return;
    Allot.show(root, s);
    if (bar) { bar.max = s.items_total; bar.value = s.sold; }
  });
})();
