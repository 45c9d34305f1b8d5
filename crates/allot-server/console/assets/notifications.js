// The template editor's preview: the editor's parts and the variables are sent to the API's
// preview call, which renders them with the notifier's own engine; the answer is shown with
// textContent only, so a template's text can never become markup here.
"use strict";

(() => {
  const form = document.getElementById("template-preview");
  const button = document.getElementById("preview-button");
  const output = document.getElementById("preview-output");
  if (!form || !button || !output) return;
  const source = document.getElementById(form.dataset.source);
  const alert = form.querySelector('[role="alert"]');

  const run = async () => {
    const parts = Allot.bodyOf(source);
    const body = { variables: form.elements.variables.value.trim() || "{}" };
    try { body.variables = JSON.parse(body.variables); } catch (_) { /* sent as typed: the API names it */ }
    if (parts.email) body.email = parts.email;
    if (parts.in_app) body.in_app = parts.in_app;
    if (parts.sms) body.sms = parts.sms;
    if (parts.push) body.push = parts.push;
    alert.textContent = "";
    const res = await Allot.api("POST", form.dataset.url, body);
    for (const el of output.querySelectorAll("[data-preview]")) {
      const v = el.dataset.preview.split(".").reduce((o, k) => (o == null ? undefined : o[k]), res.ok ? res.data : null);
      el.textContent = v === undefined ? "" : v;
    }
    if (!res.ok) {
      const err = res.data && res.data.error ? res.data.error : null;
      alert.textContent = err ? err.message : `The server answered ${res.status}.`;
    }
  };
  button.addEventListener("click", run);
  form.addEventListener("submit", (e) => { e.preventDefault(); run(); });
})();
