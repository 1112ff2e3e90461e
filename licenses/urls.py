from django.urls import path

from licenses import views

app_name = "licenses"
urlpatterns = [
    path("", views.license_list, name="list"),
    path("features/", views.feature_list, name="features"),
    path("<int:pk>/cancel/", views.license_cancel_view, name="cancel"),
    path("<int:pk>/cancel/confirm/", views.license_cancel_confirm, name="cancel_confirm"),
    path("<int:pk>/undo-cancel/", views.license_undo_cancel_view, name="undo_cancel"),
    path("<int:pk>/undo-change/", views.license_undo_change_view, name="undo_change"),
]
