// A secret the API shows once (a webhook's signing secret, an API key): after the form
// `#X` succeeds, the panel `#X-reveal` shows the answer's fields, with a copy button.
"use strict";

document.addEventListener("allot:done", (event) => {
  const form = event.target;
  const panel = form.id ? document.getElementById(`${form.id}-reveal`) : null;
  if (!panel) return;
  const data = event.detail.data || {};
  Allot.show(panel, data);
  for (const a of panel.querySelectorAll("a[data-href]")) a.href = Allot.fill(a.dataset.href, null, data);
  form.reset();
  panel.hidden = false;
  const copy = panel.querySelector("button[data-copy]");
  if (copy) copy.focus();
});

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.querySelector(button.dataset.copy);
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.textContent);
    button.textContent = "Copied";
  } catch (_) {
    // No clipboard (an insecure origin): select the text so Ctrl+C copies it.
    const range = document.createRange();
    range.selectNodeContents(source);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
});
