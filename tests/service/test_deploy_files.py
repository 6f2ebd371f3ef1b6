"""The deployment files say what the service needs (Docker and Kubernetes cannot run here, so
their content is checked instead)."""

from __future__ import annotations

from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is not installed; the deploy files are checked where it is")

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def load(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_compose_runs_the_service_and_prometheus_scraping_it():
    compose = load(DEPLOY / "compose.yaml")[0]
    assert {"blurtrack", "prometheus"} <= set(compose["services"])
    prometheus = load(DEPLOY / "prometheus.yml")[0]
    job = prometheus["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["blurtrack:8000"]


def test_kubernetes_keeps_a_session_on_one_replica():
    docs = {doc["kind"]: doc for path in (DEPLOY / "k8s").glob("*.yaml") for doc in load(path)}
    assert docs["Service"]["spec"]["sessionAffinity"] == "ClientIP"
    annotations = docs["Ingress"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert set(docs["Kustomization"]["resources"]) == {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}


def test_dockerfile_serves_on_all_interfaces_with_mslite():
    text = (REPO / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "RUN blurtrack setup mslite" in text
    assert 'CMD ["blurtrack", "serve", "--host", "0.0.0.0"' in text


def test_kubernetes_drains_streams_before_the_pod_goes():
    """The service turns unready and finishes its streams (1001) within the grace period."""
    docs = {doc["kind"]: doc for path in (DEPLOY / "k8s").glob("*.yaml") for doc in load(path)}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert 0 < float(env["BLURTRACK_SHUTDOWN_DELAY_S"]) < pod["terminationGracePeriodSeconds"] - 10


def test_a_full_replica_sends_new_sessions_to_another_pod():
    """Each pod caps its sessions; the Ingress retries a capped pod's 503 (a POST that created nothing)
    on another pod and points the affinity cookie there, so the robot's stream follows its session."""
    docs = {doc["kind"]: doc for path in (DEPLOY / "k8s").glob("*.yaml") for doc in load(path)}
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert int(env["BLURTRACK_MAX_SESSIONS"]) >= 1
    annotations = docs["Ingress"]["metadata"]["annotations"]
    retry_on = annotations["nginx.ingress.kubernetes.io/proxy-next-upstream"].split()
    assert {"http_503", "non_idempotent"} <= set(retry_on)
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-next-upstream-tries"]) >= 2
    assert annotations["nginx.ingress.kubernetes.io/session-cookie-change-on-failure"] == "true"
