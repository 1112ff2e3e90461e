// Cards with Stripe: the number goes from Stripe's card Element to Stripe, never to Pictor. The form
// confirms the SetupIntent in the browser, then posts only its id; the server asks Stripe for the card.
// A payment the bank wants authenticated is confirmed the same way (3-D Secure), then posted back.
(function () {
  "use strict";
  var form = document.querySelector("[data-stripe-card-form]");
  if (form && window.Stripe) {
    var stripe = window.Stripe(form.dataset.publishableKey);
    var card = stripe.elements().create("card");
    card.mount(form.querySelector("[data-card-element]"));
    var error = form.querySelector("[data-card-error]");
    var button = form.querySelector("[type=submit]");
    form.addEventListener("submit", function (event) {
      if (form.dataset.confirmed) return;
      event.preventDefault();
      button.disabled = true;
      error.textContent = "";
      stripe.confirmCardSetup(form.dataset.clientSecret, {payment_method: {card: card}}).then(function (result) {
        if (result.error) {
          error.textContent = (result.error.message || "Your card was not saved.") + " Nothing was saved.";
          button.disabled = false;
          return;
        }
        form.querySelector("[name=setup_intent]").value = result.setupIntent.id;
        form.dataset.confirmed = "1";
        form.submit();
      });
    });
    button.disabled = false;  // rendered disabled: a press before the card form was in place posted no card
  }
  var confirm = document.querySelector("[data-stripe-confirm-form]");
  if (confirm && window.Stripe) {
    var client = window.Stripe(confirm.dataset.publishableKey);
    var confirmButton = confirm.querySelector("[type=submit]");
    confirm.addEventListener("submit", function (event) {
      if (confirm.dataset.confirmed) return;
      event.preventDefault();
      confirmButton.disabled = true;  // one bank check at a time
      client.confirmCardPayment(confirm.dataset.clientSecret).then(function () {
        // Whatever the bank said, the server asks Stripe how the payment stands.
        confirm.dataset.confirmed = "1";
        confirm.submit();
      });
    });
    // Rendered disabled: pressed before this listener existed, the form posted a payment nobody had
    // confirmed with the bank, and the owner got a 409.
    confirmButton.disabled = false;
  }
})();
