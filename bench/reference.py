"""An independent point-in-time reference for the benchmark, and the value-by-value comparison.

The reference uses nothing from feastline or Feast: one pandas ``merge_asof`` per feature view on
the Parquet files the views read, ``direction="backward"`` (feature time <= entity time, exact
matches allowed) and ``tolerance=ttl`` (feature time >= entity time - ttl).

The contract also asks for ``created <= entity time``. ``merge_asof`` cannot express a second
inequality, so the reference checks that ``created == event_timestamp`` on every source row (true for
the data ``feastline build-data`` writes) and refuses to run otherwise, rather than give a wrong answer.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROW_ID = "row_id"
TS = "event_timestamp"


@dataclass(frozen=True)
class View:
    """One feature view of ``delay_model_v1`` as the reference needs it."""

    file: str
    key: str
    ttl: pd.Timedelta
    features: tuple[str, ...]


DELAY_MODEL_V1 = (
    View(
        "origin_weather.parquet",
        "origin",
        pd.Timedelta(hours=3),
        ("temp", "dewp", "humid", "wind_dir", "wind_speed", "precip", "pressure", "visib"),
    ),
    View(
        "carrier_daily_stats.parquet",
        "carrier",
        pd.Timedelta(days=2),
        ("flights_7d", "mean_dep_delay_7d", "share_delayed_15_7d", "share_cancelled_7d"),
    ),
)


def reference_frame(data_dir: Path, entity_df: pd.DataFrame, views: tuple[View, ...] = DELAY_MODEL_V1) -> pd.DataFrame:
    """The expected training frame.

    Args:
        data_dir: the repo's ``data/`` folder with the views' Parquet files.
        entity_df: ``row_id``, the views' keys, ``event_timestamp`` (UTC) and pass-through columns.

    Returns:
        ``len(entity_df)`` rows in input order: every ``entity_df`` column, then each view's features
        (null where no feature row is within the TTL).

    Raises:
        ValueError: a source has a row whose ``created`` differs from its ``event_timestamp``.
    """
    left = entity_df.sort_values(TS, kind="mergesort")
    out = entity_df.copy()
    for view in views:
        right = pd.read_parquet(data_dir / view.file)
        if not (right["created"] == right[TS]).all():
            raise ValueError(f"{view.file}: created != event_timestamp somewhere; the reference cannot check it")
        # ties on (key, event time): the later file row wins, as merge_asof takes the last equal key
        right = right[[view.key, TS, *view.features]].sort_values(TS, kind="mergesort")
        joined = pd.merge_asof(
            left[[ROW_ID, view.key, TS]],
            right,
            on=TS,
            by=view.key,
            direction="backward",
            allow_exact_matches=True,
            tolerance=view.ttl,
        )
        joined = joined.set_index(ROW_ID).reindex(entity_df[ROW_ID])
        for f in view.features:
            out[f] = joined[f].to_numpy()
    return out


def _as_float(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="raise").astype("Float64").to_numpy(dtype="float64", na_value=np.nan)


@dataclass(frozen=True)
class Comparison:
    """How an output differs from the reference, on the rows it has (matched by ``row_id``)."""

    rows_compared: int
    rows_missing: int  # reference rows the output does not have
    rows_extra: int  # output rows that are duplicates or unknown ids
    cell_mismatches: int
    columns_mismatched: dict[str, int]
    in_input_order: bool

    @property
    def equal(self) -> bool:
        return not (self.rows_missing or self.rows_extra or self.cell_mismatches)

    def summary(self) -> str:
        if self.equal:
            return "yes (0 mismatches)"
        parts = [f"{self.cell_mismatches:,} cell mismatches in {self.rows_compared:,} rows"]
        if self.rows_missing:
            parts.append(f"{self.rows_missing:,} rows missing")
        if self.rows_extra:
            parts.append(f"{self.rows_extra:,} extra rows")
        return "no (" + ", ".join(parts) + ")"


def compare(output: pd.DataFrame, reference: pd.DataFrame, columns: list[str]) -> Comparison:
    """Compare ``columns`` value by value (as float64; NaN equals NaN, null equals NaN), rows matched by ``row_id``."""
    ids = output[ROW_ID].to_numpy()
    in_order = bool(np.array_equal(ids, reference[ROW_ID].to_numpy()))
    unique = ~output[ROW_ID].duplicated()
    known = output[ROW_ID].isin(reference[ROW_ID])
    out = output[unique & known].set_index(ROW_ID)
    ref = reference.set_index(ROW_ID).loc[out.index]
    mismatched: dict[str, int] = {}
    for c in columns:
        if c not in out:
            mismatched[c] = len(out)
            continue
        a, b = _as_float(out[c]), _as_float(ref[c])
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        if (bad := int((~same).sum())) > 0:
            mismatched[c] = bad
    return Comparison(
        rows_compared=len(out),
        rows_missing=len(reference) - len(out),
        rows_extra=int((~(unique & known)).sum()),
        cell_mismatches=sum(mismatched.values()),
        columns_mismatched=mismatched,
        in_input_order=in_order,
    )
