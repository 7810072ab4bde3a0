// The head-office dashboard's only script: a confirmation before forms that
// cannot be undone (data-confirm), and a "copy" button for one-time tokens.
// Pages work without it.
"use strict";
document.addEventListener("submit", function (ev) {
  var msg = ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) { ev.preventDefault(); }
});
document.addEventListener("click", function (ev) {
  var id = ev.target.getAttribute && ev.target.getAttribute("data-copy");
  if (!id) { return; }
  var el = document.getElementById(id);
  if (el && navigator.clipboard) { navigator.clipboard.writeText(el.textContent.trim()); }
});
