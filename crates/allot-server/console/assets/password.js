// The signed-out pages' behaviour.
//
// A password typed twice: a field with `data-match="NAME"` must equal the field NAME of its
// form, or the form is not sent (checked before app.js sends it to the API) and says so.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement)) return;
  for (const again of form.querySelectorAll("[data-match]")) {
    const first = form.elements[again.dataset.match];
    if (first && first.value !== again.value) {
      event.preventDefault();
      event.stopImmediatePropagation();
      const alert = form.querySelector('[role="alert"]');
      if (alert) alert.textContent = "The two passwords differ.";
      again.setAttribute("aria-invalid", "true");
      again.focus();
      return;
    }
    again.removeAttribute("aria-invalid");
  }
}, true);

// The email verification page sends its link's token as soon as it opens (a script, not the
// GET itself: a mail scanner that fetches the link without running scripts uses nothing up).
window.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form[data-auto-submit]");
  if (form) form.requestSubmit();
});
