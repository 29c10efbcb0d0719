"""The fields of Segment Connections' five actions, as Segment declares them (segment.md §7).

Each action of `actions-segment` (`@segment/action-destinations` 3.497.0, `segment-properties.ts`)
declares its input fields: a label (Segment's error messages name a field by it), a type, whether
it is required, and for object fields the sub-keys they keep. `payload.py` validates a resolved
mapping against these declarations the way Segment's runtime does, `messages.py` builds the Spec
message from the validated payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["ACTION_FIELDS", "ACTIONS", "Field", "FieldType"]

FieldType = Literal["string", "number", "boolean", "object"]


@dataclass(frozen=True)
class Field:
    """One declared field: its key in the mapping, label, type, sub-fields and requiredness."""

    key: str
    label: str
    type: FieldType
    required: bool = False
    # For an object field that declares sub-keys: those, in Segment's order. Undeclared
    # sub-keys are stripped; None means a free-form object (properties, traits, consent).
    properties: tuple[Field, ...] | None = None


def _s(key: str, label: str) -> Field:
    """A string field."""
    return Field(key, label, "string")


def _object(key: str, label: str, *properties: Field) -> Field:
    """An object field keeping only the declared sub-keys."""
    return Field(key, label, "object", properties=properties)


USER_ID: Final = _s("user_id", "User ID")
ANONYMOUS_ID: Final = _s("anonymous_id", "Anonymous ID")
TIMESTAMP: Final = _s("timestamp", "Timestamp")
PAGE_NAME: Final = _s("page_name", "Page Name")
SCREEN_NAME: Final = _s("screen_name", "Screen Name")
EVENT_NAME: Final = Field("event_name", "Event Name", "string", required=True)
PAGE_CATEGORY: Final = _s("page_category", "Page Category")
APPLICATION: Final = _object(
    "application",
    "Application",
    _s("name", "Name"),
    _s("version", "Version"),
    _s("build", "Build"),
    _s("namespace", "Namespace"),
)
CAMPAIGN_PARAMETERS: Final = _object(
    "campaign_parameters",
    "Campaign Parameters",
    _s("name", "Name"),
    _s("source", "Source"),
    _s("medium", "Medium"),
    _s("term", "Term"),
    _s("content", "Content"),
)
# Segment's own sub-key names, not the Spec's: a Spec `advertisingId` is stripped.
DEVICE: Final = _object(
    "device",
    "Device",
    _s("id", "ID"),
    _s("advertising_id", "Advertising ID"),
    Field("adTracking_Enabled", "Ad Tracking Enabled", "boolean"),
    _s("manufacturer", "Manufacturer"),
    _s("model", "Model"),
    _s("name", "Name"),
    _s("type", "Type"),
    _s("token", "Token"),
)
IP_ADDRESS: Final = _s("ip_address", "IP Address")
LOCALE: Final = _s("locale", "Locale")
LOCATION: Final = _object(
    "location",
    "Location",
    _s("city", "City"),
    _s("country", "Country"),
    Field("latitude", "Latitude", "number"),
    Field("longitude", "Longitude", "number"),
    Field("speed", "Speed", "number"),
)
NETWORK: Final = _object(
    "network",
    "Network",
    Field("bluetooth", "Bluetooth", "boolean"),
    _s("carrier", "Carrier"),
    Field("cellular", "Cellular", "boolean"),
    Field("wifi", "WiFi", "boolean"),
)
OPERATING_SYSTEM: Final = _object(
    "operating_system", "Operating System", _s("name", "Name"), _s("version", "Version")
)
PAGE: Final = _object(
    "page",
    "Page",
    _s("path", "Path"),
    _s("referrer", "Referrer"),
    _s("search", "Search"),
    _s("title", "Title"),
    _s("url", "URL"),
)
SCREEN: Final = _object(
    "screen",
    "Screen",
    Field("density", "Density", "number"),
    Field("height", "Height", "number"),
    Field("width", "Width", "number"),
)
USER_AGENT: Final = _s("user_agent", "User Agent")
TIMEZONE: Final = _s("timezone", "Timezone")
GROUP_ID: Final = _s("group_id", "Group ID")
PROPERTIES: Final = Field("properties", "Properties", "object")
TRAITS: Final = Field("traits", "Traits", "object")
MESSAGE_ID: Final = _s("message_id", "MessageId")
CONSENT: Final = Field("consent", "Consent", "object")
ADDRESS: Final = _object(
    "address",
    "Address",
    _s("street", "Street"),
    _s("city", "City"),
    _s("state", "State"),
    _s("country", "Country"),
    _s("postalCode", "Postal Code"),
)

_CONTEXT: Final = (
    APPLICATION,
    CAMPAIGN_PARAMETERS,
    DEVICE,
    IP_ADDRESS,
    LOCALE,
    LOCATION,
    NETWORK,
    OPERATING_SYSTEM,
    PAGE,
    SCREEN,
    USER_AGENT,
    TIMEZONE,
)

# In each action's declaration order: Segment validates (and reports) in this order.
ACTION_FIELDS: Final[dict[str, tuple[Field, ...]]] = {
    "sendTrack": (
        USER_ID,
        ANONYMOUS_ID,
        TIMESTAMP,
        EVENT_NAME,
        *_CONTEXT,
        GROUP_ID,
        PROPERTIES,
        TRAITS,
        MESSAGE_ID,
        CONSENT,
    ),
    "sendIdentify": (
        USER_ID,
        ANONYMOUS_ID,
        TIMESTAMP,
        *_CONTEXT,
        GROUP_ID,
        TRAITS,
        MESSAGE_ID,
        CONSENT,
        ADDRESS,
    ),
    "sendPage": (
        USER_ID,
        ANONYMOUS_ID,
        TIMESTAMP,
        PAGE_NAME,
        PAGE_CATEGORY,
        *_CONTEXT,
        GROUP_ID,
        PROPERTIES,
        MESSAGE_ID,
        CONSENT,
    ),
    "sendScreen": (
        USER_ID,
        ANONYMOUS_ID,
        TIMESTAMP,
        SCREEN_NAME,
        *_CONTEXT,
        GROUP_ID,
        PROPERTIES,
        MESSAGE_ID,
        CONSENT,
    ),
    "sendGroup": (
        USER_ID,
        ANONYMOUS_ID,
        Field("group_id", "Group ID", "string", required=True),
        TIMESTAMP,
        *_CONTEXT,
        TRAITS,
        MESSAGE_ID,
        CONSENT,
    ),
}
ACTIONS: Final = tuple(ACTION_FIELDS)
