"""Log in by email; every request's user arrives with its account in the same query."""

from django.contrib.auth.backends import ModelBackend

from accounts.models import User


class EmailBackend(ModelBackend):
    """Django's ModelBackend, loading the account with the user (every Billing page needs both)."""

    def get_user(self, user_id):
        user = User._default_manager.select_related("account").filter(pk=user_id).first()
        return user if user is not None and self.user_can_authenticate(user) else None
