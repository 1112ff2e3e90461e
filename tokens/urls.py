from django.urls import path

from tokens import views

app_name = "tokens"
urlpatterns = [
    path("", views.activity, name="activity"),
    path("settings/", views.settings_update, name="settings"),
    path("top-up/", views.top_up, name="top_up"),
    path("estimate/", views.estimate, name="estimate"),
    path("estimate/result/", views.estimate_result, name="estimate_result"),
]
