"""The OpenAPI document says what the routes do: the answers' media types and shapes, every status a route
uses, and request rules stated in the schema; and the behaviour changes that made the two agree (the
schemathesis run in ``test_openapi_conformance.py`` checks the whole document against a live server)."""

import re

import pytest

from lineage import NODE_ID_PATTERN, NodeRef
from lineage.errors import InvalidNodeId


@pytest.fixture(scope="module")
def doc(client):  # type: ignore[no-untyped-def]
    return client.get("/openapi.json").json()


def test_every_error_answer_is_documented_as_a_problem(doc) -> None:  # type: ignore[no-untyped-def]
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            for status, response in op["responses"].items():
                if status[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)


def test_binary_and_text_answers_are_documented(doc) -> None:  # type: ignore[no-untyped-def]
    created = doc["paths"]["/training-sets"]["post"]["responses"]["201"]
    assert list(created["content"]) == [
        "application/json",
        "application/vnd.apache.parquet",
        "application/vnd.apache.arrow.stream",
    ]
    assert {"X-Training-Set-Id", "Location"} <= set(created["headers"])
    data = doc["paths"]["/training-sets/{ts_id}/data"]["get"]["responses"]["200"]["content"]
    assert {"application/vnd.apache.parquet", "application/vnd.apache.arrow.stream", "application/json"} == set(data)
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert [m.split(";")[0] for m in metrics] == ["text/plain"]


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/get-online-features", {"400", "404", "406", "415", "422", "503"}),
        ("post", "/models", {"201", "400", "404", "409", "415", "422"}),
        ("post", "/materialize", {"202", "400", "404", "415", "422"}),
        ("post", "/training-sets", {"201", "400", "404", "406", "409", "413", "415", "422", "503"}),
        ("post", "/training-sets/{ts_id}/reproduce", {"200", "404", "503"}),
    ],
)
def test_the_statuses_a_route_uses_are_documented(doc, method: str, path: str, statuses: set[str]) -> None:  # type: ignore[no-untyped-def]
    assert statuses <= set(doc["paths"][path][method]["responses"])


def test_answer_shapes_are_documented(doc) -> None:  # type: ignore[no-untyped-def]
    schemas = doc["components"]["schemas"]
    ok = doc["paths"]["/get-online-features"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/OnlineFeaturesOut"}
    assert {"metadata", "results"} <= set(schemas["OnlineFeaturesOut"]["required"])
    job = doc["paths"]["/materialize"]["post"]["responses"]["202"]
    assert job["links"]["GetJob"]["operationId"] == "get_job" and "Location" in job["headers"]


def test_the_node_id_pattern_is_exactly_what_parse_accepts() -> None:
    pattern = re.compile(NODE_ID_PATTERN.removeprefix("^").removesuffix("$"))  # ECMA 262's $: the very end
    for text in ["feature:a", "feature:a:b", "model:m@1", "feature:\u200b", "feature:é x", "column:a.b"]:
        assert pattern.fullmatch(text) and NodeRef.parse(text)
    for text in ["feature:", "feature:a\n", "feature:a\x85", "bogus:a", "nocolon", "feature:\x00"]:
        assert not pattern.fullmatch(text)
        with pytest.raises(InvalidNodeId):
            NodeRef.parse(text)


def test_ids_valid_per_the_document_are_looked_up_not_refused(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/lineage/nodes/feature:\u200b").status_code == 404  # printable or not, no control char
    assert client.get("/lineage/nodes/feature:a\x85").status_code == 422
    assert client.get("/lineage/nodes/feature:x", params={"as_of": "1" + "0" * 30}).status_code == 404
    for moment in ("0001-01-01T00:30:00+01:00", "0001-01-01T00:00:00Z"):  # before every version
        before = client.get("/lineage/nodes/feature_view:origin_weather", params={"as_of": moment})
        assert before.status_code == 404 and before.json()["field"] == "query.as_of", moment
    after = client.get("/lineage/nodes/feature_view:origin_weather", params={"as_of": "9999-12-31T23:30:00-01:00"})
    assert after.status_code == 200


def test_a_405_names_every_method_of_the_path(client) -> None:  # type: ignore[no-untyped-def]
    response = client.put("/models")
    assert response.status_code == 405 and response.headers["allow"] == "GET, POST"
    assert response.headers["content-type"] == "application/problem+json"
    assert client.delete("/health").headers["allow"] == "GET"


@pytest.mark.parametrize("path", ["/models", "/materialize", "/materialize-incremental"])
def test_a_json_route_refuses_a_body_of_another_type_with_415(client, path: str) -> None:  # type: ignore[no-untyped-def]
    response = client.post(path, content=b"{}", headers={"content-type": "text/plain"})
    assert response.status_code == 415 and response.json()["field"] == "header.content-type"


def test_a_lookback_written_with_a_zero_fraction_is_an_integer(client) -> None:  # type: ignore[no-untyped-def]
    # the body is valid (an unknown view is the next check, 404), so no job is queued on the shared repo
    whole = client.post("/materialize-incremental", json={"lookback_seconds": 3600.0, "feature_views": ["nope"]})
    assert whole.status_code == 404 and whole.json()["field"] == "feature_views.0"
    half = client.post("/materialize-incremental", json={"lookback_seconds": 3600.5})
    assert half.status_code == 422 and half.json()["field"] == "lookback_seconds"


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_every_reference_resolves_from_the_document_root(doc) -> None:  # type: ignore[no-untyped-def]
    """A ``$ref`` is resolved from the OpenAPI document's root (ReDoc stops drawing on ``#/$defs/...``
    of an embedded JSON Schema): each one must name a component that exists."""
    refs = _refs(doc)
    assert refs, "the document has no references at all: the check would be empty"
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"], ref
