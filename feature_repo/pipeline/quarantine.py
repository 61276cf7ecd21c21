"""Validate a table against its pandera schema and split it into valid and quarantined rows.

Nothing is dropped silently: every input row ends up either in the valid table or in the
quarantine table, which carries a ``quarantine_reason`` column naming each failed check.
"""

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors


class SchemaBroken(Exception):
    """The table fails its schema as a whole (a missing column, a wrong dtype): no row can be kept."""

    def __init__(self, schema: str, failures: list[dict[str, Any]]):
        self.schema = schema
        self.failures = failures
        super().__init__(f"table {schema!r} fails its schema as a whole: {failures[:5]}")


@dataclass(frozen=True)
class QualityResult:
    """What validation found in one table.

    ``failures`` lists every failed check per row: ``{"row", "column", "check", "value"}``, where
    ``row`` is the row's position in the input table.
    """

    schema: str
    rows_in: int
    rows_valid: int
    rows_quarantined: int
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "rows_in": self.rows_in,
            "rows_valid": self.rows_valid,
            "rows_quarantined": self.rows_quarantined,
            "passed": self.rows_quarantined == 0,
            "failures": self.failures,
        }


def _jsonable(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def validate_or_quarantine(
    df: pd.DataFrame, schema: pa.DataFrameSchema
) -> tuple[pd.DataFrame, pd.DataFrame, QualityResult]:
    """Validate ``df`` (with a 0..n-1 RangeIndex) lazily, collecting every failure.

    Returns:
        ``(valid, quarantined, result)``: ``valid`` has the schema's columns and only rows that pass;
        ``quarantined`` has the same columns plus ``quarantine_reason`` (str, ``"; "``-separated
        ``column: check (value)`` items) and ``source_row`` (the row's position in ``df``).

    Raises:
        SchemaBroken: a failure not tied to a row (missing column, wrong dtype).
    """
    df = df.reset_index(drop=True)
    try:
        valid = schema.validate(df, lazy=True)
        return (
            valid,
            df.iloc[0:0].assign(quarantine_reason="", source_row=0),
            QualityResult(str(schema.name), len(df), len(df), 0),
        )
    except SchemaErrors as err:
        cases = err.failure_cases
    row_cases = cases[cases["index"].notna()]
    table_cases = cases[cases["index"].isna()]
    if len(table_cases):
        raise SchemaBroken(str(schema.name), table_cases.astype(str).to_dict("records"))
    failures = [
        {
            "row": int(case["index"]),
            "column": None if pd.isna(case["column"]) else str(case["column"]),
            "check": str(case["check"]),
            "value": _jsonable(case["failure_case"]),
        }
        for _, case in row_cases.iterrows()
    ]
    reasons: dict[int, list[str]] = {}
    for f in failures:
        reasons.setdefault(f["row"], []).append(f"{f['column']}: {f['check']} ({f['value']})")
    bad_rows = sorted(reasons)
    quarantined = df.loc[bad_rows].copy()
    quarantined["quarantine_reason"] = ["; ".join(reasons[i]) for i in bad_rows]
    quarantined["source_row"] = bad_rows
    valid = schema.validate(df.drop(index=bad_rows).reset_index(drop=True), lazy=True)
    result = QualityResult(str(schema.name), len(df), len(valid), len(bad_rows), failures)
    return valid, quarantined.reset_index(drop=True), result
