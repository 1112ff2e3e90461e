from django.urls import path, re_path

from finance import views

app_name = "finance"
NUMBER = r"(?P<number>PB-\d{4}-\d{6})"  # real accounts' numbers only: test accounts are left out
urlpatterns = [
    path("", views.home, name="home"),
    path("invoices/", views.invoice_search, name="invoices"),
    path("invoices/export.csv", views.invoice_export, name="export"),
    path("invoices/export.zip", views.invoice_zip, name="zip"),
    path("exports/zips/<int:pk>/", views.zip_job, name="zip_job"),
    path("exports/zips/<int:pk>/download/", views.zip_job_download, name="zip_job_download"),
    re_path(rf"^invoices/{NUMBER}/$", views.invoice_detail, name="invoice"),
    re_path(rf"^invoices/{NUMBER}\.pdf$", views.invoice_pdf_download, name="pdf"),
    path("receivables/", views.receivables, name="receivables"),
    path("revenue/", views.revenue, name="revenue"),
]
