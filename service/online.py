"""Online reads: validate a ``feast serve``-style request, then read through Feast's online store.

Request and response JSON are those of ``feast serve``'s ``POST /get-online-features``:
``{"entities": {"origin": ["EWR"], ...}, "feature_service": "delay_model_v1"}`` (or ``"features"``),
answered as ``{"metadata": {"feature_names": [...]}, "results": [{"values", "statuses",
"event_timestamps"}, ...]}`` with one result per name, entity keys first.
"""

from typing import Any

from feast import FeatureStore
from feast.feature_server_utils import convert_response_to_dict
from pydantic import BaseModel, ConfigDict, Field

from service.offline.views import plan_retrieval, service_references


class OnlineFeaturesRequest(BaseModel):
    """The body of ``feast serve``'s ``/get-online-features``. Strict: unknown keys and wrong JSON types are 422."""

    model_config = ConfigDict(strict=True, extra="forbid")

    entities: dict[str, list[Any]] = Field(description="join key (and request field) -> values, one per entity")
    feature_service: str | None = None
    features: list[str] = Field(default_factory=list, description="'view:feature' references")
    full_feature_names: bool = False


class OnlineRequestInvalid(Exception):
    """An online request that cannot be answered: lists every problem as ``{"field", "row", "problem"}``."""

    def __init__(self, problems: list[dict[str, Any]]):
        self.problems = problems
        self.field = problems[0]["field"]
        super().__init__(f"{len(problems)} problem(s); first: {problems[0]['field']}: {problems[0]['problem']}")

    def details(self) -> dict[str, Any]:
        return {"problems": self.problems[:100], "problem_count": len(self.problems)}


def _references(store: FeatureStore, req: OnlineFeaturesRequest) -> list[str]:
    if req.feature_service and req.features:
        raise OnlineRequestInvalid(
            [{"field": "features", "row": None, "problem": "give feature_service or features, not both"}]
        )
    if req.feature_service:
        return service_references(store, req.feature_service)
    if not req.features:
        raise OnlineRequestInvalid([{"field": "features", "row": None, "problem": "give feature_service or features"}])
    return req.features


def validate_online_request(store: FeatureStore, req: OnlineFeaturesRequest) -> list[str]:
    """Check the request against the registry; return the feature references to read.

    Raises:
        OnlineRequestInvalid: a join key or request field missing, lists of unequal length, a value of
            the wrong type (join keys of this repo are strings; request fields integers).
        UnknownFeatureService / UnknownFeature: the service or a feature does not exist.
    """
    refs = _references(store, req)
    plan = plan_retrieval(store, refs)
    problems: list[dict[str, Any]] = []
    names = [r if req.full_feature_names else r.partition(":")[2] for r in refs]
    if len(set(refs)) < len(refs):
        twice = sorted({r for r in refs if refs.count(r) > 1})
        problems.append({"field": "features", "row": None, "problem": f"{twice} requested more than once"})
    elif clashes := sorted({n for n in names if names.count(n) > 1}):
        problems.append(
            {
                "field": "features",
                "row": None,
                "problem": f"{clashes} appear in more than one view; ask for full_feature_names=true",
            }
        )
    for key in (*plan.join_keys, *plan.request_fields):
        if key not in req.entities:
            problems.append({"field": f"entities.{key}", "row": None, "problem": "is missing"})
    lengths = {k: len(v) for k, v in req.entities.items()}
    if len(set(lengths.values())) > 1:
        problems.append({"field": "entities", "row": None, "problem": f"lists differ in length: {lengths}"})
    if not req.entities or not any(lengths.values()):
        problems.append({"field": "entities", "row": None, "problem": "no entities given"})
    for key in plan.join_keys:
        for i, v in enumerate(req.entities.get(key, [])):
            if not isinstance(v, str):  # a null cannot be looked up (training sets allow it: null features)
                problems.append({"field": f"entities.{key}", "row": i, "problem": f"must be a string, got {v!r}"})
    for key in plan.request_fields:
        for i, v in enumerate(req.entities.get(key, [])):
            if not isinstance(v, int) or isinstance(v, bool) or not -(2**63) <= v < 2**63:
                problems.append({"field": f"entities.{key}", "row": i, "problem": f"must be an integer, got {v!r}"})
    if problems:
        raise OnlineRequestInvalid(problems)
    return refs


def read_online(store: FeatureStore, req: OnlineFeaturesRequest) -> dict[str, Any]:
    """Validate and read; the response dict exactly as ``feast serve`` shapes it."""
    refs = validate_online_request(store, req)
    features: Any = store.get_feature_service(req.feature_service) if req.feature_service else refs
    response = store.get_online_features(
        features=features, entity_rows=req.entities, full_feature_names=req.full_feature_names
    )
    return convert_response_to_dict(response.proto)
