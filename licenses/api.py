"""Device API for licenses: lease one to a live event, free it again, and list what may be started."""

from accounts.api_keys import api_key_required
from licenses.models import EventLease
from licenses.services import (
    AllLicensesBusy,
    EventLiveOnLowerTier,
    EventNotLive,
    LicenseTierNeeded,
    device_licenses,
    event_start,
    event_stop,
)
from pictor_billing import pricing
from pictor_billing.api import (
    ApiError,
    api_view,
    choice_field,
    identifier,
    json_object,
    json_response,
    string_field,
)

START_FIELDS = ("event_id", "event_tier", "device_id")


def lease_body(lease: EventLease) -> dict:
    """A lease as the API shows it."""
    body = {"event_id": lease.event_id, "event_tier": lease.event_tier, "device_id": lease.device_id,
            "license_id": lease.license_id, "license_tier": lease.license.tier,
            "paid_until": lease.license.period_end.isoformat(), "started_at": lease.started_at.isoformat()}
    if lease.stopped_at is not None:
        body["stopped_at"] = lease.stopped_at.isoformat()
    return body


@api_view("POST")
@api_key_required
def event_start_view(request):
    """Lease the lowest sufficient free license to this event (201; 200 when it already runs)."""
    body = json_object(request, fields=START_FIELDS)
    event_tier = choice_field(body, "event_tier", pricing.TIERS)
    label = pricing.TIER_LABELS[event_tier]
    try:
        lease, created = event_start(account=request.account, event_id=string_field(body, "event_id"),
                                     event_tier=event_tier, device_id=string_field(body, "device_id"))
    except LicenseTierNeeded:
        raise ApiError(403, "license_tier_needed", f"Running a {label} event needs an active {label} license "
                                                   "or higher.", tier_needed=event_tier) from None
    except AllLicensesBusy:
        raise ApiError(409, "all_licenses_busy", "Every license that can run this event is running another one.",
                       tier_needed=event_tier) from None
    except EventLiveOnLowerTier:
        raise ApiError(409, "event_live_on_lower_tier", "This event is live on a license that cannot run "
                                                        f"{label} events; stop it first.",
                       tier_needed=event_tier) from None
    return json_response(lease_body(lease), status=201 if created else 200)


@api_view("POST")
@api_key_required
def event_stop_view(request, event_id):
    """End the event's lease and free its license (404 when the event is not live)."""
    event_id = identifier(event_id, "event_id")
    try:
        lease = event_stop(account=request.account, event_id=event_id)
    except EventNotLive:
        raise ApiError(404, "event_not_live", f"No live event {event_id!r}.") from None
    return json_response(lease_body(lease))


@api_view("GET")
@api_key_required
def license_list(request):
    """The active licenses: each one's tier, the event tiers it runs, and its live event if any."""
    return json_response({"licenses": device_licenses(account=request.account)})
