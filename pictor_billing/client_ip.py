"""The address a request came from, for throttling log-ins (django-axes) and sign-ups.

Behind our reverse proxy (BEHIND_PROXY) every request's REMOTE_ADDR is the proxy's, so the client is
the address the proxy appended to X-Forwarded-For: its last entry. The entries before it were sent
by the client and can say anything, so they are never trusted.
"""

from django.conf import settings


def client_ip(request) -> str:
    if settings.BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR", "")
