"""HTMX helpers: render a page or one of its partials, and flash messages out of band."""

from django.contrib.messages import get_messages
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils.cache import patch_vary_headers


def render_htmx(request, template: str, context: dict, *, partial: str | None = None, status: int = 200):
    """The whole page, or `template#partial` when HTMX asks; always `Vary: HX-Request`."""
    name = f"{template}#{partial}" if partial and request.htmx else template
    response = TemplateResponse(request, name, context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response


class HtmxMessagesMiddleware:
    """Append pending flash messages to HTMX fragment responses as an out-of-band swap.

    Full pages render messages in base.html; a fragment swap would otherwise
    leave them queued until the next full page.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            not getattr(request, "htmx", False)
            or request.htmx.boosted
            or "HX-Redirect" in response
            or "HX-Location" in response
            or response.streaming
            or not response.get("Content-Type", "").startswith("text/html")
        ):
            return response
        if hasattr(response, "render") and not response.is_rendered:
            response.render()
        messages = list(get_messages(request))
        if messages:
            response.content += render_to_string(
                "_messages.html", {"messages": messages, "oob": True}, request=request
            ).encode()
        return response
