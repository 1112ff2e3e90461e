from django.urls import path

from payments import views

app_name = "payments"
urlpatterns = [
    path("", views.payment_tab, name="tab"),
    path("cards/add/", views.card_add_view, name="card_add"),
    path("cards/<int:pk>/default/", views.card_make_default_view, name="card_default"),
    path("details/", views.billing_details_view, name="details"),
]
