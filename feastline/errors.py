"""The errors :class:`feastline.client.FeastlineClient` raises: one class per status, grouped by family.

Every error answer of the service is an ``application/problem+json`` document (RFC 9457); the
exception carries it whole (``.problem``) and its usual fields as attributes::

    FeastlineError                      anything the client raises
    ├── TransportError                  no answer: connection refused, reset, timed out (``.__cause__``)
    │   └── Timeout
    ├── JobFailed                       a materialization job ended ``failed`` (``.job``)
    └── ApiError                        an answer with status >= 400: .status .title .detail .field .problems .problem
        ├── ClientError                 4xx
        │   ├── BadRequest              400 malformed body
        │   ├── NotFound                404 unknown feature service, feature, view, node, job, training set, ...
        │   ├── MethodNotAllowed        405
        │   ├── NotAcceptable           406 none of the accepted types (or JSON cannot carry the data)
        │   ├── Conflict                409 leakage audit failed, model version taken
        │   ├── PayloadTooLarge         413
        │   ├── UnsupportedMediaType    415
        │   └── Unprocessable           422 invalid request or rows (``.problems``: every bad row/field)
        └── ServerError                 5xx
            └── ServiceUnavailable      503 store unreachable / data not built (``.retry_after``, seconds)

``except feastline.ClientError`` catches every 4xx, ``except feastline.NotFound`` one status.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import httpx

PROBLEM_JSON = "application/problem+json"


class FeastlineError(Exception):
    """Base of every error the client raises."""


class TransportError(FeastlineError):
    """The request got no answer (connection refused or reset, DNS, protocol error); the httpx
    exception is the ``__cause__``."""


class Timeout(TransportError):
    """No answer within the client's timeout (``FeastlineClient(timeout=...)``)."""


class JobFailed(FeastlineError):
    """A materialization job ended with status ``failed``; ``.job`` is its last state (``error`` says why)."""

    def __init__(self, job: dict[str, Any]):
        self.job = job
        super().__init__(f"materialization job {job.get('id')} failed: {job.get('error')}")


class ApiError(FeastlineError):
    """An answer with status >= 400.

    Attributes:
        status: the HTTP status (``problem["status"]`` when the body is a problem).
        title: the problem's short name, e.g. ``"entity-rows-invalid"``.
        detail: the human-readable explanation.
        field: the request field at fault (``"event_timestamp"``, ``"query.as_of"``), or None.
        problems: for row-level problems, ``[{"row", "field", "problem"}, ...]`` (else ``[]``).
        problem: the whole problem document as a dict (a body that is not a problem is reported as one,
            with its text as ``detail``).
        response: the ``httpx.Response``.
    """

    def __init__(self, problem: dict[str, Any], response: httpx.Response):
        self.problem = problem
        self.response = response
        self.status: int = int(problem.get("status") or response.status_code)
        self.title: str = str(problem.get("title") or "")
        self.detail: str = str(problem.get("detail") or "")
        self.field: str | None = problem.get("field")
        self.problems: list[dict[str, Any]] = list(problem.get("problems") or [])
        super().__init__(f"{self.status} {self.title}: {self.detail}")


class ClientError(ApiError):
    """4xx: the request was refused; sending it again unchanged gets the same answer."""


class ServerError(ApiError):
    """5xx."""


class BadRequest(ClientError):
    """400: the body is not what its content type says (JSON with line and column, Parquet, Arrow)."""


class NotFound(ClientError):
    """404."""


class MethodNotAllowed(ClientError):
    """405."""


class NotAcceptable(ClientError):
    """406."""


class Conflict(ClientError):
    """409: the leakage audit failed (no data answered) or the model name@version is registered."""


class PayloadTooLarge(ClientError):
    """413."""


class UnsupportedMediaType(ClientError):
    """415."""


class Unprocessable(ClientError):
    """422: an invalid request or invalid rows; ``.problems`` lists each bad row and field."""


class ServiceUnavailable(ServerError):
    """503: the online store cannot be reached or the data is not built; ``.retry_after`` is the
    ``Retry-After`` header in seconds (None without one). Nothing was written: retrying is safe."""

    @property
    def retry_after(self) -> float | None:
        value = self.response.headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    404: NotFound,
    405: MethodNotAllowed,
    406: NotAcceptable,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: Unprocessable,
    503: ServiceUnavailable,
}


def problem_of(response: httpx.Response) -> dict[str, Any]:
    """The problem document of an error answer; a body that is not one (a proxy's HTML page) becomes
    ``{"status", "title", "detail"}`` with the first 2,000 characters of its text as ``detail``."""
    if response.headers.get("content-type", "").split(";")[0].strip() in (PROBLEM_JSON, "application/json"):
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            return body
    try:
        title = HTTPStatus(response.status_code).phrase.lower().replace(" ", "-")
    except ValueError:
        title = "http-error"
    return {"status": response.status_code, "title": title, "detail": response.text[:2000]}


def error_for(response: httpx.Response) -> ApiError:
    """The exception for an answer with status >= 400 (read the body first for a streamed answer)."""
    status = response.status_code
    family: type[ApiError] = ClientError if status < 500 else ServerError
    return BY_STATUS.get(status, family)(problem_of(response), response)
