// Coupons page: the CSV upload. fetch() reports no upload progress, so the file goes by
// XMLHttpRequest, with the session cookie and the CSRF token like every other API call; the
// API's answer (how many stored, or the rows it refused) is shown under the form.
"use strict";

// MEGADEAL admission updates itself while the page is open.
(() => {
  const dl = document.querySelector("dl[data-poll]");
  if (dl) Allot.poll(dl.dataset.poll, 2000, (values) => Allot.show(dl, values));
})();

(() => {
  const form = document.getElementById("coupon-upload");
  if (!form) return;
  const input = form.querySelector('input[type="file"]');
  const progress = document.getElementById("upload-progress");
  const result = document.getElementById("upload-result");
  const alert = form.querySelector('[role="alert"]');
  const list = document.getElementById("upload-errors");
  const button = form.querySelector('button[type="submit"]');
  const csrf = () => {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  };

  function reset() {
    alert.textContent = "";
    result.textContent = "";
    while (list.firstChild) list.removeChild(list.firstChild);
    input.removeAttribute("aria-invalid");
    progress.value = 0;
  }

  // A refused row as a person reads it: the API counts data rows from 0; people from 1, the
  // header line not counted.
  function rowText(d) {
    return `Row ${d.index + 1}: ${d.field}: ${d.message}`;
  }

  function failed(status, data) {
    const err = data && data.error ? data.error : null;
    alert.textContent = err ? err.message : `The server answered ${status}.`;
    if (err && Array.isArray(err.details)) {
      for (const d of err.details) {
        const li = document.createElement("li");
        li.textContent = rowText(d);
        li.dataset.row = String(d.index + 1);
        li.dataset.field = d.field;
        list.appendChild(li);
      }
    }
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", alert.id);
    input.focus();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    reset();
    const file = input.files && input.files[0];
    if (!file) {
      alert.textContent = "file: choose a CSV file first";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.dataset.upload);
    xhr.setRequestHeader("Content-Type", "text/csv");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", csrf());
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) progress.value = Math.round((e.loaded / e.total) * 100);
    });
    xhr.addEventListener("load", () => {
      button.disabled = false;
      progress.value = 100;
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch (_) { data = null; }
      if (xhr.status === 401) {
        window.location.assign("/?next=" + encodeURIComponent(window.location.pathname));
        return;
      }
      if (xhr.status >= 200 && xhr.status < 300 && data) {
        result.textContent = `Stored ${Allot.fmt.int(data.created)} coupons in ${Allot.fmt.int(data.chunks)} chunk(s).`;
        form.reset();
        return;
      }
      failed(xhr.status, data);
    });
    xhr.addEventListener("error", () => {
      button.disabled = false;
      alert.textContent = "The upload failed: the server could not be reached.";
    });
    button.disabled = true;
    xhr.send(file);
  });
})();
