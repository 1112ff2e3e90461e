from django.urls import path

from tokens import views

app_name = "tokens"
urlpatterns = [
    path("", views.activity, name="activity"),
    path("settings/", views.settings_update, name="settings"),
]
