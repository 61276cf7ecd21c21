"""feastline's Python client: :class:`FeastlineClient` (one method per route of the service, pandas in
and out, on httpx) and its errors (:mod:`feastline.errors`). It needs httpx, pandas and pyarrow only;
the service itself is the ``service`` package."""

from feastline.client import FeastlineClient, OnlineFeatures, TrainingSet
from feastline.errors import (
    ApiError,
    BadRequest,
    ClientError,
    Conflict,
    FeastlineError,
    JobFailed,
    MethodNotAllowed,
    NotAcceptable,
    NotFound,
    PayloadTooLarge,
    ServerError,
    ServiceUnavailable,
    Timeout,
    TransportError,
    Unprocessable,
    UnsupportedMediaType,
)

__all__ = [
    "ApiError",
    "BadRequest",
    "ClientError",
    "Conflict",
    "FeastlineClient",
    "FeastlineError",
    "JobFailed",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "OnlineFeatures",
    "PayloadTooLarge",
    "ServerError",
    "ServiceUnavailable",
    "Timeout",
    "TrainingSet",
    "TransportError",
    "Unprocessable",
    "UnsupportedMediaType",
]
