"""The Prometheus configs, alert rules and Alertmanager routing pass promtool and amtool
(Debian's prometheus and prometheus-alertmanager, installed by .ci/run)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.support import PROJECT_ROOT
from tests.support.tools import require

PROMTOOL = shutil.which("promtool")
MONITORING = PROJECT_ROOT / "monitoring"


def test_alert_rules_and_scrape_config_are_valid() -> None:
    require("promtool")
    assert PROMTOOL is not None, ".ci/run should have installed promtool"
    monitoring = PROJECT_ROOT / "monitoring"
    rules = subprocess.run(
        [PROMTOOL, "check", "rules", str(monitoring / "alerts.yml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert "SUCCESS: 8 rules found" in rules.stdout
    for name in ("prometheus.yml", "prometheus-compose.yml"):
        config = subprocess.run(
            [PROMTOOL, "check", "config", str(monitoring / name)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert config.returncode == 0, config.stdout + config.stderr


def test_drift_alert_fires_on_the_gauge(tmp_path: object) -> None:
    """promtool's rule unit test: the drift gauge at 1 for 15 minutes fires MnistInputDrift."""
    require("promtool")
    assert PROMTOOL is not None
    monitoring = PROJECT_ROOT / "monitoring"
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(monitoring / "alerts_test.yml")],
        capture_output=True, text=True, check=False, cwd=monitoring,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    """amtool (Debian's prometheus-alertmanager) on the repository's files."""
    require("amtool")
    return subprocess.run(["amtool", *args], capture_output=True, text=True, check=False,
                          cwd=PROJECT_ROOT / "monitoring")  # fmt: skip


def test_alertmanager_config_is_valid_with_and_without_the_commented_receivers(
    tmp_path: Path,
) -> None:
    """amtool accepts the file, and the Slack and e-mail examples once a team uncomments them."""
    checked = amtool("check-config", "alertmanager.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    head, receivers = (MONITORING / "alertmanager.yml").read_text().split("\nreceivers:\n")
    uncommented = re.sub(r"^    # ?", "    ", receivers, flags=re.MULTILINE)
    assert "slack_configs:" in uncommented
    assert "email_configs:" in uncommented
    examples = tmp_path / "alertmanager.yml"
    examples.write_text(f"{head}\nreceivers:\n{uncommented}")
    checked = amtool("check-config", str(examples))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_rule_routes_to_the_receiver_of_its_severity() -> None:
    """A page reaches the page receiver and a ticket the ticket one, as amtool resolves them."""
    rules = [r for g in yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
             for r in g["rules"]]  # fmt: skip
    assert {r["labels"]["severity"] for r in rules} == {"page", "ticket"}
    for rule in rules:
        severity = rule["labels"]["severity"]
        routed = amtool("config", "routes", "test", "--config.file=alertmanager.yml",
                        f"alertname={rule['alert']}", f"severity={severity}")  # fmt: skip
        assert routed.stdout.strip() == severity, (rule["alert"], routed.stdout + routed.stderr)


def test_inhibit_rules_name_alerts_that_exist() -> None:
    """A renamed alert would silently escape (or never get) its inhibition."""
    alerts = {r["alert"] for g in yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
              for r in g["rules"]}  # fmt: skip
    config = yaml.safe_load((MONITORING / "alertmanager.yml").read_text())
    named = set()
    for rule in config["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            match = re.fullmatch(r'alertname=~?"([^"]+)"', matcher)
            assert match, matcher
            named |= set(match.group(1).split("|"))
    assert named <= alerts, named - alerts
    assert "MnistServiceDown" in named


def test_prometheus_sends_to_the_alertmanager_compose_and_kubernetes_run() -> None:
    """Both Prometheus configs name an Alertmanager; compose and Kubernetes run it with the
    repository's file and the receiver its webhooks name beside it."""
    local = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    compose_prom = yaml.safe_load((MONITORING / "prometheus-compose.yml").read_text())
    assert local["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "127.0.0.1:9093"]  # fmt: skip
    assert compose_prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"]  # fmt: skip
    hooks = {h["url"] for r in yaml.safe_load((MONITORING / "alertmanager.yml").read_text())[
        "receivers"] for h in r["webhook_configs"]}  # fmt: skip
    assert hooks == {"http://127.0.0.1:9095/page", "http://127.0.0.1:9095/ticket"}
    services = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"]
    assert "./monitoring/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in services[
        "alertmanager"]["volumes"]  # fmt: skip
    receiver = services["alert-log"]
    assert receiver["network_mode"] == "service:alertmanager"  # its 127.0.0.1 is Alertmanager's
    assert receiver["entrypoint"][-2:] == ["--port", "9095"]
    manifests = (PROJECT_ROOT / "kubernetes/base/alertmanager.yaml").read_text()
    (deployment,) = [d for d in yaml.safe_load_all(manifests) if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert containers["alert-log"]["command"][-2:] == ["--port", "9095"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in containers["alertmanager"]["args"]
    assert {"name": "config", "configMap": {"name": "mnist-alertmanager"}} in pod["volumes"]
