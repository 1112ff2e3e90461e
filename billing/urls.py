"""The Billing area's flows, mounted at the site root: sign-up, buying licenses and tokens, removing cards.

The paths sit beside the tabs they belong to (/billing/licenses/add/ next to the Licenses tab),
while the views live here, above the apps they tie together.
"""

from django.urls import path

from billing.views import cards, change, estimate, paying, purchase, renewals, signup, top_up, webhooks

app_name = "billing"
urlpatterns = [
    path("signup/", signup.signup, name="signup"),
    path("verify-email/send/", signup.email_verify_send, name="email_verify_send"),
    path("verify-email/<str:token>/", signup.email_verify_view, name="email_verify"),
    path("billing/licenses/add/", purchase.license_add, name="license_add"),
    path("billing/licenses/summary/", purchase.purchase_summary, name="purchase_summary"),
    path("billing/licenses/change/", change.license_change, name="license_change"),
    path("billing/licenses/change/summary/", change.change_summary, name="change_summary"),
    path("billing/tokens/top-up/", top_up.top_up, name="top_up"),
    path("billing/tokens/top-up/summary/", top_up.top_up_summary, name="top_up_summary"),
    path("billing/payments/<int:pk>/confirm/", paying.payment_confirm, name="payment_confirm"),
    path("billing/renewals/<int:pk>/pay/", renewals.renewal_pay, name="renewal_pay"),
    path("billing/tokens/estimate/", estimate.estimate, name="estimate"),
    path("billing/tokens/estimate/result/", estimate.estimate_result, name="estimate_result"),
    path("billing/payment/cards/<int:pk>/remove/", cards.card_remove_view, name="card_remove"),
    path("billing/payment/cards/<int:pk>/remove/confirm/", cards.card_remove_confirm, name="card_remove_confirm"),
    path("stripe/webhook/", webhooks.stripe_webhook, name="stripe_webhook"),
]
