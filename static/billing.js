// Modals: HTMX puts a <dialog> into #modal-root; open it, and remove it once closed.
// Open on htmx:load (after HTMX has processed the new content), not htmx:afterSwap: until then
// the dialog's hx-* attributes are not wired up, and a quick first change would be lost.
document.addEventListener("htmx:load", function (event) {
  var dialog = document.querySelector("#modal-root > dialog:not([open])");
  if (dialog) dialog.showModal();
});
document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-close-dialog]");
  if (button) button.closest("dialog").close();
});
document.addEventListener("close", function (event) {
  if (event.target.matches("#modal-root > dialog")) event.target.remove();
}, true);
// A change in a form that prices an order disables its pay button at once, before the refreshed
// summary arrives with a new one for the new total: a click can never pay a total not on screen
// (and if it could, the server refuses any order whose digest differs from the one shown).
document.addEventListener("input", function (event) {
  var form = event.target.closest("[data-quote-form]");
  if (!form) return;
  form.querySelectorAll("[data-pay-button]").forEach(function (button) { button.disabled = true; });
});
