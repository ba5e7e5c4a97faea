"""Time zones by IANA name (plain Python, no models): a workspace's zone and the rollups' days."""

from __future__ import annotations

import zoneinfo
from datetime import tzinfo


def zone_named(name: str | None) -> tzinfo:
    """The zone with this IANA name; UTC for an empty or unknown name."""
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")
