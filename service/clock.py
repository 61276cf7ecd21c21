"""The service's clock: wall time, unless ``FEASTLINE_NOW`` pins it (replays of 2013, tests).

Online reads enforce each view's TTL against this clock.
"""

from datetime import UTC, datetime

from service.settings import Settings


def service_now(settings: Settings) -> datetime:
    """Timezone-aware UTC: ``settings.now`` if pinned, else the wall clock."""
    return settings.now if settings.now is not None else datetime.now(UTC)
