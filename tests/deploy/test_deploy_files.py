"""deploy/ checked offline: no Docker engine, no cluster, no schema downloads.

The Kubernetes manifests are validated against the schemas kubernetes-validate ships, the
compose file against the Compose Specification schema check-jsonschema vendors; the rest is
checked for what the operations guide promises (KRaft quorum, replication 3, co-partitioned
topics, probes on the ops listener, a non-root image, a hardened systemd unit), and every
environment override and config file is loaded by the real Settings, so a renamed key fails
here rather than in production.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped,unused-ignore]
import kubernetes_validate  # type: ignore[import-untyped,unused-ignore]
import pytest
import yaml

from ingestor.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
STAGES = ("fetch", "parse", "dedup")
OPS_PORT = 9108

_DEFAULTS = Settings.model_validate({})
TOPICS = {
    _DEFAULTS.topics.raw,
    _DEFAULTS.topics.items,
    _DEFAULTS.topics.published,
    _DEFAULTS.topics.dlq,
    _DEFAULTS.topics.feeds,
    _DEFAULTS.fetch.state_topic,
    _DEFAULTS.topics.article_requests,
    _DEFAULTS.full_text.state_topic,
}
CO_PARTITIONED = (_DEFAULTS.topics.raw, _DEFAULTS.topics.items, _DEFAULTS.topics.published)
COMPACTED = {_DEFAULTS.topics.feeds, _DEFAULTS.fetch.state_topic, _DEFAULTS.full_text.state_topic}
#: the article state is written to the partition number of the request it answers
SAME_COUNT = (_DEFAULTS.topics.article_requests, _DEFAULTS.full_text.state_topic)


def _yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _expand(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set in the environment."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def _settings_with_env(config: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for key, value in env.items():
        monkeypatch.setenv(key, _expand(str(value)))
    return load_settings(config)


# ---- every file --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", sorted([*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")]), ids=lambda p: str(p.relative_to(REPO))
)
def test_every_yaml_file_parses(path: Path) -> None:
    assert _yaml_docs(path), f"{path} is empty"


# ---- docker compose ----------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification() -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    jsonschema.validate(_compose(), schema)


def test_compose_runs_a_three_broker_kraft_cluster_with_replication_three() -> None:
    services = _compose()["services"]
    brokers = {name: svc for name, svc in services.items() if svc["image"].startswith("apache/kafka:")}
    brokers.pop("topic-init")
    assert len(brokers) == 3
    node_ids = set()
    for svc in brokers.values():
        env = svc["environment"]
        assert "controller" in env["KAFKA_PROCESS_ROLES"] and "broker" in env["KAFKA_PROCESS_ROLES"]
        assert len(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")) == 3
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["CLUSTER_ID"], "KRaft needs a cluster id"
        assert "kafka-broker-api-versions" in " ".join(svc["healthcheck"]["test"])
        node_ids.add(env["KAFKA_NODE_ID"])
    assert len(node_ids) == 3


def test_compose_topic_init_creates_every_topic_co_partitioned_and_replicated() -> None:
    services = _compose()["services"]
    init = services["topic-init"]
    script = "\n".join(init["command"])
    created = {m[0]: (m[1], m[2]) for m in re.findall(r"^\s*create (\S+)\s+(\S+)(.*)$", script, re.MULTILINE)}
    assert set(created) == TOPICS
    assert len({created[topic][0] for topic in CO_PARTITIONED}) == 1, "raw/items/published differ"
    assert len({created[topic][0] for topic in SAME_COUNT}) == 1, "article requests/state differ"
    for topic in COMPACTED:
        assert "cleanup.policy=compact" in created[topic][1]
    assert "--replication-factor 3" in script
    for broker in ("kafka-1", "kafka-2", "kafka-3"):
        assert init["depends_on"][broker]["condition"] == "service_healthy"


def test_compose_runs_each_stage_as_its_own_service_with_replicas_and_a_healthcheck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = _compose()["services"]
    for stage in STAGES:
        svc = services[stage]
        command = svc["command"]
        assert command[:3] == ["run", "--stage", stage]
        assert isinstance(svc["deploy"]["replicas"], int) and svc["deploy"]["replicas"] >= 1
        assert "container_name" not in svc, "a fixed name prevents replicas"
        assert f"127.0.0.1:{OPS_PORT}/livez" in " ".join(svc["healthcheck"]["test"])
        assert svc["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
        env = svc["environment"]
        assert env["INGESTOR_OPS__LISTEN"].endswith(f":{OPS_PORT}")
        with monkeypatch.context() as patch:  # the overrides are real keys with valid values
            settings = _settings_with_env(REPO / "config.yaml", env, patch)
        assert not settings.kafka.is_embedded
        assert len(settings.kafka.bootstrap_servers.split(",")) == 3
        assert settings.topics.replication_factor == 3
        assert settings.topics.create is False
    assert services["parse"]["deploy"]["replicas"] > 1 and services["dedup"]["deploy"]["replicas"] > 1


def test_prometheus_scrapes_every_stage_on_the_ops_port() -> None:
    services = _compose()["services"]
    assert any("prometheus.yml" in volume for volume in services["prometheus"]["volumes"])
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    job = config["scrape_configs"][0]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (sd,) = job["dns_sd_configs"]
    assert set(sd["names"]) == set(STAGES) and sd["port"] == OPS_PORT


# ---- Dockerfile --------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_dockerfile_is_slim_non_root_with_a_healthcheck_and_the_ingestor_entrypoint() -> None:
    steps = _instructions()
    final = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    base = final[0][1]
    assert re.match(r"python:3\.1[1-9]-slim\b", base), base
    users = [rest for word, rest in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image runs as root"
    (healthcheck,) = [rest for word, rest in final if word == "HEALTHCHECK"]
    assert "/livez" in healthcheck and "urllib.request" in healthcheck
    assert json.loads(next(rest for word, rest in final if word == "ENTRYPOINT")) == ["ingestor"]
    assert any(word == "RUN" and "pip install ." in rest for word, rest in steps)


def test_dockerignore_keeps_the_build_context_small_but_complete() -> None:
    patterns = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "tests"} <= patterns
    needed = {"pyproject.toml", "README.md", "config.yaml", "ingestor", "consumers"}
    assert not needed & patterns, "the Dockerfile copies these"


# ---- Kubernetes --------------------------------------------------------------------------------

#: Strimzi's KafkaTopic CRD is not in kubernetes-validate; the part of it these manifests use.
KAFKA_TOPIC_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "kafka.strimzi.io/v1beta2"},
        "metadata": {
            "type": "object",
            "required": ["name", "labels"],
            "properties": {"labels": {"type": "object", "required": ["strimzi.io/cluster"]}},
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["partitions", "replicas"],
            "properties": {
                "topicName": {"type": "string"},
                "partitions": {"type": "integer", "minimum": 1},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                "config": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "integer", "boolean"]},
                },
            },
        },
    },
}


def _manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs.extend(_yaml_docs(path))
    return docs


def test_kubernetes_manifests_validate_against_their_schemas() -> None:
    version = kubernetes_validate.latest_version()
    docs = _manifests()
    assert docs
    for doc in docs:
        if doc["kind"] == "KafkaTopic":
            jsonschema.validate(doc, KAFKA_TOPIC_SCHEMA)
        else:
            kubernetes_validate.validate(doc, version, strict=True)


def test_kustomization_lists_existing_files() -> None:
    (kustomization,) = _yaml_docs(K8S / "kustomization.yaml")
    for name in kustomization["resources"]:
        assert (K8S / name).is_file(), name


def test_each_stage_has_a_probed_bounded_deployment_and_a_pdb() -> None:
    docs = _manifests()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for stage in STAGES:
        deployment = deployments[f"news-ingestor-{stage}"]
        pod = deployment["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        assert container["args"][:3] == ["run", "--stage", stage]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
            get = container[probe]["httpGet"]
            assert get["path"] == path
            assert ports.get(get["port"], get["port"]) == OPS_PORT
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert "memory" in container["resources"]["limits"]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        labels = pod["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        matching = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, f"{stage}: expected one PodDisruptionBudget, found {len(matching)}"


def test_configmap_holds_a_valid_config(tmp_path: Path) -> None:
    (configmap,) = [d for d in _manifests() if d["kind"] == "ConfigMap"]
    path = tmp_path / "config.yaml"
    path.write_text(configmap["data"]["config.yaml"], encoding="utf-8")
    settings = load_settings(path, check_files=False)  # its CA file is mounted in the pod only
    assert settings.topics.replication_factor == 3 and settings.topics.create is False
    assert settings.ops.listen is not None and settings.ops.listen.endswith(f":{OPS_PORT}")


def test_strimzi_topics_and_the_init_job_create_the_same_co_partitioned_topics() -> None:
    topics = {d["spec"]["topicName"]: d["spec"] for d in _manifests() if d["kind"] == "KafkaTopic"}
    assert set(topics) == TOPICS
    assert len({topics[t]["partitions"] for t in CO_PARTITIONED}) == 1
    assert len({topics[t]["partitions"] for t in SAME_COUNT}) == 1
    assert all(spec["replicas"] == 3 for spec in topics.values())
    for topic in COMPACTED:
        assert topics[topic]["config"]["cleanup.policy"] == "compact"
    (job,) = [d for d in _manifests() if d["kind"] == "Job"]
    script = "\n".join(job["spec"]["template"]["spec"]["containers"][0]["args"])
    assert set(re.findall(r"^\s*create (\S+)", script, re.MULTILINE)) == TOPICS


# ---- systemd -----------------------------------------------------------------------------------

UNIT = DEPLOY / "systemd" / "news-ingestor.service"


def _unit() -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None and "=" in line, f"not a unit line: {raw!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_unit_restarts_stops_in_time_and_is_hardened() -> None:
    service = _unit()["Service"]
    expected = {
        "Restart": "on-failure",
        "KillSignal": "SIGTERM",
        "TimeoutStopSec": "15",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }
    for key, value in expected.items():
        assert service.get(key) == [value], key
    assert service["ExecStart"][0].split()[1:3] == ["run", "--config"]
    assert "WantedBy" in _unit()["Install"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """``systemd-analyze verify`` with ExecStart pointed at this venv's ``ingestor``, since the
    unit names the install path of a real machine."""
    ingestor = Path(sys.executable).parent / "ingestor"
    if not ingestor.exists():
        pytest.skip("the ingestor script is not installed next to this python")
    unit = tmp_path / UNIT.name
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace("/opt/news-ingestor/bin/ingestor", str(ingestor))
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
