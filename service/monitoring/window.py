"""The entity rows of a window of the online feature log: what a drift target ``{"window": ...}`` joins.

The log itself (issue #12 part 3) is read through ``service.monitoring.online_log.read_log(settings,
start, end)``, a frame with the columns ``request_id``, ``logged_at`` (UTC), ``sequence``,
``feature_service``, the join-key columns, one column per feature value and ``status``. Until that
module is part of the build, asking for a window is a 409 (:class:`OnlineLogUnavailable`).
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Any

import pandas as pd

from service.settings import Settings

LOG_MODULE = "service.monitoring.online_log"


class OnlineLogUnavailable(Exception):
    """The online feature log cannot be read (not part of this build): 409."""

    field = "target.window"

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"the online feature log cannot be read: {reason}")

    def details(self) -> dict[str, Any]:
        return {"reason": self.reason}


def entity_rows_in_window(settings: Settings, start: datetime, end: datetime) -> pd.DataFrame:
    """The requests the online log holds with ``start <= logged_at < end``, as entity rows.

    Returns:
        the log's rows in ``(logged_at, sequence)`` order, with ``event_timestamp`` (the service clock
        time each request was served at, ``datetime64[ns, UTC]``) added; the join-key columns are the
        log's own. Empty when nothing was logged in the window.

    Raises:
        OnlineLogUnavailable: the log reader is not part of this build (409).
    """
    try:
        log = importlib.import_module(LOG_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != LOG_MODULE:
            raise
        raise OnlineLogUnavailable("online feature logging is not part of this build yet") from None
    frame: pd.DataFrame = log.read_log(settings, start, end)
    frame = frame[(frame["logged_at"] >= start) & (frame["logged_at"] < end)]
    frame = frame.sort_values(["logged_at", "sequence"], kind="stable").reset_index(drop=True)
    return frame.assign(event_timestamp=pd.to_datetime(frame["logged_at"], utc=True))
