"""Wiring of the online log and the parity gauges into an app (called once by ``create_app``)."""

from fastapi import FastAPI

from service.monitoring.online_log import OnlineLog
from service.monitoring.parity import ParityGauges
from service.settings import Settings


def install_online_monitoring(app: FastAPI, settings: Settings) -> OnlineLog:
    """Put ``app.state.online_log`` (writer started by the app's lifespan, flushed at its shutdown) and
    ``app.state.parity_gauges`` on the app, their series on ``app.state.metrics``' registry."""
    registry = app.state.metrics.registry
    online_log = OnlineLog(settings, registry)
    gauges = ParityGauges()
    registry.register(gauges)
    app.state.online_log, app.state.parity_gauges = online_log, gauges
    return online_log
