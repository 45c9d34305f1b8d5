// Discount codes: generation in calls of at most `data-batch-max` codes each (the API's
// limit), with a progress bar; the codes generated kept here for a CSV download (a Blob: the
// server keeps no copy); the look-up's answer shown in words.
"use strict";

(() => {
  const form = document.getElementById("discount-generate");
  const download = document.getElementById("discount-download");
  const bar = document.getElementById("discount-progress");
  let codes = [];

  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const alert = form.querySelector('[role="alert"]');
      const status = form.querySelector('[role="status"]');
      const submit = form.querySelector('button[type="submit"]');
      // By querySelector: `form.elements.length` is the number of fields, not the one named so.
      const field = (name) => form.querySelector(`[name="${name}"]`);
      const countField = field("count");
      const raw = countField.value.trim();
      const wanted = /^\d+$/.test(raw) ? Number.parseInt(raw, 10) : raw;
      const length = Number.parseInt(field("length").value, 10);
      const max = Number.parseInt(form.dataset.batchMax, 10);
      const limit = Number.parseInt(countField.max, 10);
      alert.textContent = "";
      status.textContent = "";
      for (const el of form.querySelectorAll('[aria-invalid="true"]')) el.removeAttribute("aria-invalid");
      if (typeof wanted === "number" && wanted > limit) {
        alert.textContent = `count: at most ${limit.toLocaleString("en-US")} from this page`;
        countField.setAttribute("aria-invalid", "true");
        countField.focus();
        return;
      }
      codes = [];
      download.disabled = true;
      submit.disabled = true;
      bar.max = typeof wanted === "number" && wanted > 0 ? wanted : 1;
      bar.value = 0;
      try {
        // A count the API refuses (0, not a number) is sent as typed: its answer names it.
        let left = wanted;
        do {
          const count = typeof left === "number" && left > max ? max : left;
          const key = crypto.randomUUID();
          let res = await Allot.api("POST", form.dataset.apiBatch, { count, length }, { "Idempotency-Key": key });
          // A lost answer is asked again with the same key: the API answers the same codes.
          if (res.status >= 500 || res.status === 0) res = await Allot.api("POST", form.dataset.apiBatch, { count, length }, { "Idempotency-Key": key });
          if (!res.ok) {
            const err = res.data && res.data.error ? res.data.error : null;
            alert.textContent = (err ? err.message : `The server answered ${res.status}.`) +
              (codes.length ? ` ${codes.length.toLocaleString("en-US")} codes were generated before; they can be downloaded.` : "");
            const bad = err && err.field ? field(err.field) : null;
            if (bad) {
              bad.setAttribute("aria-invalid", "true");
              bad.focus();
            }
            break;
          }
          codes.push(...res.data.codes);
          bar.value = codes.length;
          status.textContent = `${codes.length.toLocaleString("en-US")} of ${Number(wanted).toLocaleString("en-US")} codes generated.`;
          left = typeof left === "number" ? left - res.data.codes.length : 0;
        } while (left > 0);
      } catch (e) {
        alert.textContent = `The request failed: ${e.message}`;
      } finally {
        submit.disabled = false;
        download.disabled = codes.length === 0;
      }
    });
  }

  if (download) {
    download.addEventListener("click", () => {
      const blob = new Blob(["code\r\n", codes.join("\r\n"), "\r\n"], { type: "text/csv" });
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url;
      a.download = `discount-codes-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-")}.csv`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 10000);
    });
  }

  const lookup = document.getElementById("discount-lookup");
  const result = document.getElementById("discount-lookup-result");
  if (lookup && result) {
    lookup.addEventListener("submit", () => { result.textContent = ""; });
    lookup.addEventListener("allot:done", (event) => {
      const c = event.detail.data;
      result.textContent = c.used
        ? `${c.code}: found, used at ${Allot.fmt.time(Date.parse(c.used_at))} (created ${Allot.fmt.time(Date.parse(c.created_at))}).`
        : `${c.code}: found, not used (created ${Allot.fmt.time(Date.parse(c.created_at))}).`;
    });
  }
})();
