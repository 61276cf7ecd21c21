"""The monitoring package's errors and their HTTP statuses (merged into ``service.errors.PROBLEM_STATUS``)."""

from service.monitoring.drift import DriftRequestInvalid, ThresholdTagInvalid
from service.monitoring.reports import DriftReportNotFound
from service.monitoring.window import OnlineLogUnavailable

MONITORING_PROBLEM_STATUS: dict[type[Exception], int] = {
    DriftRequestInvalid: 422,
    ThresholdTagInvalid: 409,
    DriftReportNotFound: 404,
    OnlineLogUnavailable: 409,  # not a 5xx: nothing failed, the build has no log to read
}
