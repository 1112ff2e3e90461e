from django.urls import path

from tokens import views

app_name = "tokens"
urlpatterns = [
    path("top-up/", views.top_up, name="top_up"),
]
