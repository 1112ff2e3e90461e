"""Device API for licenses: lease one to a live event, free it again, and list what may be started."""

from licenses.services import device_licenses, event_start, event_stop
from pictor_billing import pricing
from pictor_billing.api import (
    api_key_required,
    api_view,
    choice_field,
    identifier,
    json_object,
    json_response,
    string_field,
)

START_FIELDS = ("event_id", "event_tier", "device_id")


@api_view("POST")
@api_key_required
def event_start_view(request):
    """Lease the lowest sufficient free license to this event (201; 200 when it already runs)."""
    body = json_object(request, fields=START_FIELDS)
    result = event_start(account=request.account, event_id=string_field(body, "event_id"),
                         event_tier=choice_field(body, "event_tier", pricing.TIERS),
                         device_id=string_field(body, "device_id"))
    return json_response(result.body, status=result.status)


@api_view("POST")
@api_key_required
def event_stop_view(request, event_id):
    """End the event's lease and free its license (404 when the event is not live)."""
    result = event_stop(account=request.account, event_id=identifier(event_id, "event_id"))
    return json_response(result.body, status=result.status)


@api_view("GET")
@api_key_required
def license_list(request):
    """The active licenses: each one's tier, the event tiers it runs, and its live event if any."""
    return json_response({"licenses": device_licenses(account=request.account)})
