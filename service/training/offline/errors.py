"""Errors of offline retrieval. Each carries structured fields; ``service.errors`` maps them to HTTP."""

from typing import Any


class RetrievalError(Exception):
    """Base class: a training-set request that cannot be answered as asked."""

    field: str | None = None

    def details(self) -> dict[str, Any]:
        return {}


class UnknownFeatureService(RetrievalError):
    field = "feature_service"

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"feature service {name!r} is not in the registry")

    def details(self) -> dict[str, Any]:
        return {"feature_service": self.name}


class UnknownFeature(RetrievalError):
    field = "features"

    def __init__(self, reference: str):
        self.reference = reference
        super().__init__(f"feature {reference!r} is not in the registry (expected 'view:feature')")

    def details(self) -> dict[str, Any]:
        return {"feature": self.reference}


class FeatureReferenceInvalid(RetrievalError):
    field = "features"

    def __init__(self, reference: str):
        self.reference = reference
        super().__init__(f"feature reference {reference!r} is not of the form 'view:feature'")

    def details(self) -> dict[str, Any]:
        return {"feature": self.reference}


class FeatureSelectionInvalid(RetrievalError):
    """Neither or both of ``feature_service`` and ``features`` were given."""

    field = "features"

    def __init__(self, message: str):
        super().__init__(message)


class FeatureNameCollision(RetrievalError):
    field = "features"

    def __init__(
        self,
        names: list[str],
        reason: str = "appear in more than one view",
        hint: str = "ask for full_feature_names=true or rename",
    ):
        self.names = names
        super().__init__(f"output column(s) {names} {reason}; {hint}")

    def details(self) -> dict[str, Any]:
        return {"colliding": self.names}


class EntityRowsInvalid(RetrievalError):
    """Entity rows fail validation. ``problems`` lists every failure: ``{"row", "field", "problem"}``."""

    field = "entity_rows"
    MAX_LISTED = 100

    def __init__(self, problems: list[dict[str, Any]]):
        self.problems = problems
        first = problems[0] if problems else {}
        where = f"row {first['row']}, " if first.get("row") is not None else ""
        super().__init__(
            f"{len(problems)} problem(s) in entity rows; first: {where}field {first.get('field')!r}: "
            f"{first.get('problem')}"
        )
        timezone = [p for p in problems if p.get("field") == "timezone"]
        self.field = "timezone" if timezone else "entity_rows"

    def details(self) -> dict[str, Any]:
        return {"problem_count": len(self.problems), "problems": self.problems[: self.MAX_LISTED]}


class SourceDataMissing(RetrievalError):
    """A view's source file does not exist: ``feastline build-data`` has not run."""

    field = None

    def __init__(self, view: str, path: str):
        self.view, self.path = view, path
        super().__init__(f"source of feature view {view!r} not found at {path}; run `feastline build-data`")

    def details(self) -> dict[str, Any]:
        return {"feature_view": self.view, "path": self.path}


class TooLargeForJson(RetrievalError):
    """More rows than a JSON answer may carry, and the request accepts nothing else (406): ask for
    Parquet or Arrow instead. (413 is for request bodies.)"""

    field = "header.accept"
    BINARY = ("application/vnd.apache.parquet", "application/vnd.apache.arrow.stream")

    def __init__(self, rows: int, limit: int, field: str = "header.accept", supported: tuple[str, ...] = BINARY):
        self.rows, self.limit, self.field, self.supported = rows, limit, field, supported
        super().__init__(
            f"{rows:,} rows is more than {limit:,} for a JSON answer, and Accept allows no other type; ask for "
            f"Parquet or Arrow with Accept: {' or '.join(supported)} (or list one after JSON, e.g. "
            f"'application/json, {supported[0]};q=0.5')"
        )

    def details(self) -> dict[str, Any]:
        return {"rows": self.rows, "limit": self.limit, "supported": list(self.supported)}


class SourceKeyTypeMismatch(RetrievalError):
    """A view's source holds a join-key column of a type that does not hold its declared type's values
    (text for an integer key, floats for any key): joining it would need a lossy cast, so nothing is joined."""

    field = None

    def __init__(self, view: str, key: str, column: str, physical: str, declared: str):
        self.view, self.key, self.column, self.physical, self.declared = view, key, column, physical, declared
        super().__init__(
            f"feature view {view!r}: join key {key!r} is declared {declared} but its source column {column!r} "
            f"holds {physical}; fix the source data or the declared type (a key is never cast lossily)"
        )

    def details(self) -> dict[str, Any]:
        return {
            "feature_view": self.view,
            "join_key": self.key,
            "source_column": self.column,
            "source_type": self.physical,
            "declared_type": self.declared,
        }
