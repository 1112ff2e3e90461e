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
// Where the focus goes inside a region that was just swapped in: its message (autofocus) or the
// control that took the pressed one's place (data-focus-after-swap: Cancel and Undo cancel), else its
// first button or link, else the region itself. Never left on <body>, where a keyboard or screen
// reader user would have to start the page again.
var FOCUS_ORDER = ["[autofocus]", "[data-focus-after-swap]", "button:not([disabled])", "a[href]"];
function focusInside(region) {
  var control = null;
  for (var i = 0; i < FOCUS_ORDER.length && !control; i++) control = region.querySelector(FOCUS_ORDER[i]);
  if (!control) { region.setAttribute("tabindex", "-1"); control = region; }
  control.focus();
}
// A row's own button (Undo cancel, Undo change) replaces the row it sits in, and the focused button
// with it: remember the region, and once the new one is in, put the focus back inside it.
var focusedRegion = null;
document.addEventListener("htmx:beforeRequest", function (event) {
  var target = event.detail.target;
  focusedRegion = target && target.id && target.contains(document.activeElement) ? target.id : null;
});
document.addEventListener("htmx:load", function (event) {
  var region = event.detail.elt;
  if (focusedRegion && region.id === focusedRegion && (!document.activeElement || document.activeElement === document.body)) {
    focusedRegion = null;
    focusInside(region);
  }
});
// A confirmation dialog (Cancel license, Remove card) closes once its answer is on the page, and the
// focus goes to what changed (the row, or the cards with their message) instead of the button that opened it, now gone.
// What was swapped in (HTMX marks it htmx-added) is focused on its htmx:load, once HTMX has wired up its
// buttons: focused sooner, an Enter pressed at once would post the form as a plain page.
document.addEventListener("htmx:afterRequest", function (event) {
  var form = event.detail.elt;
  var dialog = form.closest && form.closest("dialog");
  if (!dialog || !form.hasAttribute("data-close-dialog-after") || !event.detail.xhr.status) return;
  dialog.close();
  var target = event.detail.target && document.getElementById(event.detail.target.id);
  if (target && target.classList.contains("htmx-added")) {
    focusedRegion = target.id;
    // Closing the dialog put the focus back on what opened it, if that is still on the page: let go of it.
    if (document.activeElement) document.activeElement.blur();
  } else if (target) focusInside(target);
});
