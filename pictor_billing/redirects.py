"""Where to send a user back to after a form: only somewhere on this site."""

from django.utils.http import url_has_allowed_host_and_scheme


def safe_next_url(request) -> str:
    """The posted or queried `next` URL when it stays on this site; otherwise ''."""
    value = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(value, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return value
    return ""
