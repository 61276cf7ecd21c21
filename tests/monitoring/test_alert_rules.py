"""The shipped Prometheus alert rules (``deploy/prometheus/alerts.yml``) are valid and behave as their
unit tests say (``deploy/prometheus/alerts_test.yml``: for each rule, series that fire and series that
must not), checked with ``promtool`` (Debian's ``prometheus`` package; ``.ci/run`` installs it)."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT, require_services

RULES = PROJECT / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if not Path(PROMTOOL).exists():
        if require_services():
            pytest.fail("promtool is missing and FEASTLINE_REQUIRE_SERVICES=1 (apt-get install prometheus)")
        pytest.skip("promtool is missing (apt-get install prometheus)")
    return subprocess.run([PROMTOOL, *args], cwd=PROJECT, capture_output=True, text=True, timeout=60, check=False)


def test_the_alert_rules_are_valid() -> None:
    run = promtool("check", "rules", "deploy/prometheus/alerts.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 4 rules found" in run.stdout


def test_the_alert_rules_pass_their_unit_tests() -> None:
    run = promtool("test", "rules", "deploy/prometheus/alerts_test.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_every_rule_has_unit_tests() -> None:
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    tests = yaml.safe_load((RULES / "alerts_test.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tested = {c["alertname"]: c["exp_alerts"] for t in tests["tests"] for c in t["alert_rule_test"]}
    assert alerts == {"FeatureViewStale", "FeatureDrift", "ParityLow", "OnlineLogDrops"}
    assert set(tested) == alerts
    for alert in alerts:  # each rule is seen firing and not firing
        cases = [c["exp_alerts"] for t in tests["tests"] for c in t["alert_rule_test"] if c["alertname"] == alert]
        assert any(cases) and not all(cases), alert
