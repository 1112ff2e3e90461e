from django.urls import path, re_path

from invoices import views

app_name = "invoices"
urlpatterns = [
    path("", views.invoice_list, name="list"),
    # Only what an invoice number can look like reaches the database (a NUL, say, never does).
    re_path(r"^(?P<number>PB-(?:TEST-)?\d{4}-\d{6})\.pdf$", views.invoice_pdf_download, name="pdf"),
]
