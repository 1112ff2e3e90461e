"""What the finance area keeps of its own: a record of every export (it reads everything else)."""

from django.db import models

from pictor_billing import clock

FINANCE_GROUP = "Finance"


class ExportRecord(models.Model):
    """One export of the invoice search: who made it, when, with which filter, in which format, how many rows."""

    INVOICES_CSV, LINES_CSV, PDF_ZIP = "invoices_csv", "lines_csv", "pdf_zip"
    FORMAT_CHOICES = [(INVOICES_CSV, "CSV, one invoice a row"), (LINES_CSV, "CSV, one invoice line a row"),
                      (PDF_ZIP, "Zip of PDFs")]

    user = models.ForeignKey("accounts.User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)
    filters = models.JSONField(default=dict, blank=True, help_text="The search's filter, as in its URL.")
    format = models.CharField(max_length=20, choices=FORMAT_CHOICES)
    row_count = models.PositiveIntegerField()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_format_display()} by {self.user_id} at {self.created_at:%Y-%m-%d %H:%M}"


class ZipJob(models.Model):
    """A zip of PDFs too large to render while the browser waits: a task renders and caches the PDFs,
    its page shows done / total and offers the download once every PDF is cached."""

    user = models.ForeignKey("accounts.User", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)
    filters = models.JSONField(default=dict, blank=True, help_text="The search's filter, as in its URL.")
    sort = models.CharField(max_length=20, blank=True)
    total = models.PositiveIntegerField()
    done = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Zip of {self.total} PDFs ({self.done} rendered)"

    @property
    def ready(self) -> bool:
        return self.finished_at is not None and not self.error

    @property
    def percent(self) -> int:
        return 100 if not self.total else self.done * 100 // self.total
