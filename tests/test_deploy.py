"""The deployment files, checked offline: hadolint, the Compose and Kubernetes schemas, and the image's
own entrypoint command run here."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from functools import cache
from importlib.resources import files
from pathlib import Path

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml

from service.app import create_app
from service.probe import target
from service.settings import Settings
from tests.support.servers import free_port
from tests.support.speech import speak
from training.__main__ import build_parser
from training.metrics import cer

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
KUBERNETES_VERSION = "1.37.0"
ROUTES = set(create_app(Settings()).openapi()["paths"])


# Dockerfile


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Each stage's instructions as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, arguments = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        elif not stages:
            continue  # the ARGs that FROM lines read
        stages[-1].append((instruction.upper(), " ".join(arguments.split())))
    return stages


def instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [arguments for instruction, arguments in stage if instruction == name]


def image_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    return dict(pair.split("=", 1) for arguments in instructions(stage, "ENV") for pair in shlex.split(arguments))


def test_hadolint_finds_nothing_in_the_dockerfile():
    result = subprocess.run([BIN / "hadolint", "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (0, "")


def test_the_service_image_is_the_last_stage_non_root_exec_form_and_checks_liveness():
    *builders, final = dockerfile_stages()
    bases = {instructions(stage, "FROM")[0].split()[0] for stage in [*builders, final]}
    default = re.search(r"^ARG BASE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert bases == {"${BASE}"} and ":" in default[1]  # one pinned base image, which deploy/test-image.sh replaces
    assert instructions(final, "COPY") == ["--from=build /opt/venv /opt/venv"]
    assert all(not re.search(r"apt-get|pip |gcc|build-essential", run) for run in instructions(final, "RUN"))
    (user,) = instructions(final, "USER")
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) != 0
    (entrypoint,) = instructions(final, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["python", "-m", "service"]
    (healthcheck,) = instructions(final, "HEALTHCHECK")
    probe = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert probe == ["python", "-m", "service.probe", "/health"]  # at $ASR_PORT, which the image sets
    assert image_env(final)["ASR_PORT"] == "8000"
    assert image_env(final)["ASR_HOST"] == "0.0.0.0"


def test_the_probe_asks_this_host_at_asr_port_for_a_path(monkeypatch):
    monkeypatch.setenv("ASR_PORT", "9123")
    assert target("/health") == "http://127.0.0.1:9123/health"
    assert target("http://asr:8000/ready") == "http://asr:8000/ready"
    monkeypatch.delenv("ASR_PORT")
    with pytest.raises(SystemExit, match="set ASR_PORT"):
        target("/health")


def test_the_image_installs_the_locked_cuda_build_of_torch():
    build = dockerfile_stages()[0]
    assert any("-c requirements.lock" in run for run in instructions(build, "RUN"))
    lock = (ROOT / "requirements.lock").read_text().split()
    pyproject = (ROOT / "pyproject.toml").read_text()
    for pin in ("torch==2.14.1", "torchaudio==2.11.0"):
        assert pin in lock and f'"{pin}"' in pyproject
    assert any(line.startswith("nvidia-cudnn") for line in lock)  # the CUDA libraries torch's wheel needs


def in_build_context(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or one of its folders decides."""

    def regex(pattern: str) -> re.Pattern:
        parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern.strip("/"))
        wild = {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
        return re.compile("".join(wild.get(part, re.escape(part)) for part in parts))

    parents = ["/".join(path.split("/")[:i]) for i in range(1, path.count("/") + 2)]
    included = True
    for pattern in patterns:
        if any(regex(pattern.lstrip("!")).fullmatch(parent) for parent in parents):
            included = pattern.startswith("!")
    return included


def test_dockerignore_lets_in_what_the_images_copy_and_nothing_bulky():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    junk = [
        ".venv/bin/python",
        "data/v1/train/1/1/1-1-0000.flac",
        "runs/v1.safetensors",
        "runs/v1.state.pt",
        "asr/models/candidate.safetensors",
        "asr/models/default.safetensors.state.pt",
        "service/__pycache__/app.cpython-311.pyc",
        ".pytest_cache/v/cache/nodeids",
        ".git/HEAD",
        "models/mine.safetensors",
    ]
    assert not [path for path in junk if in_build_context(path, patterns)]
    copied = ("pyproject.toml", "requirements.lock", "README.md", "asr/", "service/", "client/", "training/")
    context = [path for path in tracked if in_build_context(path, patterns)]
    assert context and all(path.startswith(copied) for path in context)
    bundled = {"asr/models/default.safetensors", "asr/models/default-lm.arpa", "asr/models/default-lm.json"}
    assert bundled | {"service/app.py", "training/train.py"} <= set(context)


def test_the_image_entrypoint_serves_a_transcription_and_stops_cleanly_on_sigterm():
    """The final stage's ENTRYPOINT and ENV, run here; the project's virtualenv plays /opt/venv."""
    final = dockerfile_stages()[-1]
    entrypoint = json.loads(instructions(final, "ENTRYPOINT")[0])
    healthcheck = json.loads(instructions(final, "HEALTHCHECK")[0].split(" CMD ", 1)[1])
    port = free_port()  # the only change: port 8000 may be taken on this machine
    env = {**os.environ, **image_env(final), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "ASR_PORT": str(port)}
    healthcheck = [part.replace(":8000/", f":{port}/") for part in healthcheck]
    process = subprocess.Popen(entrypoint, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(healthcheck, env=env, capture_output=True).returncode != 0:
            assert process.poll() is None and time.monotonic() < deadline, "the service never became healthy"
            time.sleep(0.2)
        url = f"http://127.0.0.1:{port}"
        while httpx.get(f"{url}/ready").status_code != 200:
            assert time.monotonic() < deadline, "the model never became ready"
            time.sleep(0.2)
        response = httpx.post(f"{url}/v1/transcribe", content=speak("open the garage door please"), timeout=30)
        assert response.status_code == 200
        assert cer(["open the garage door please"], [response.json()["text"]]) <= 0.3
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate()[0].decode()
    assert f"Uvicorn running on http://0.0.0.0:{port}" in output


# docker-compose


class ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's merge tags (!reset, !override), which keep their value."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node):
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    return loader.construct_scalar(node)


for _tag in ("!reset", "!override"):
    ComposeLoader.add_constructor(_tag, _tagged)


@cache
def compose(name: str) -> dict:
    return yaml.load((ROOT / name).read_text(), ComposeLoader)


def compose_validator() -> jsonschema.protocols.Validator:
    """The Compose specification's schema, as check-jsonschema ships it (no download)."""
    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    return jsonschema.validators.validator_for(schema)(schema)


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.cpu.yml"])
def test_compose_files_follow_the_compose_specification(name):
    assert [error.message for error in compose_validator().iter_errors(compose(name))] == []


def test_the_compose_schema_check_catches_a_misspelt_key():
    broken = copy.deepcopy(compose("docker-compose.yml"))
    broken["services"]["asr"]["deploy"]["resources"]["reservations"]["devices"][0]["drivers"] = "nvidia"
    assert list(compose_validator().iter_errors(broken))


def test_compose_reserves_a_gpu_waits_for_readiness_and_outlasts_the_drain():
    asr = compose("docker-compose.yml")["services"]["asr"]
    assert asr["deploy"]["resources"]["reservations"]["devices"] == [
        {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    ]
    probe = asr["healthcheck"]["test"]
    assert probe == ["CMD", "python", "-m", "service.probe", "/ready"]
    assert asr["restart"] == "unless-stopped"
    assert int(asr["stop_grace_period"].removesuffix("s")) >= Settings().drain_seconds + 5
    assert asr["environment"]["ASR_DRAIN_SECONDS"] == "${ASR_DRAIN_SECONDS:-30}" and Settings().drain_seconds == 30
    assert any(volume.endswith(":/models:ro") for volume in asr["volumes"])
    assert "ASR_CHECKPOINT" in asr["environment"] and asr["environment"]["ASR_CHECKPOINT"] is None


def test_the_cpu_override_drops_the_gpu_reservation():
    asr = compose("docker-compose.cpu.yml")["services"]["asr"]
    assert asr["deploy"]["resources"]["reservations"]["devices"] == []
    assert "devices: !reset []" in (ROOT / "docker-compose.cpu.yml").read_text()
    assert asr["environment"] == {"ASR_DEVICE": "cpu", "ASR_MAX_BATCH_SECONDS": "60"}


def test_the_proxy_and_prometheus_configs_are_in_the_repo_and_reach_every_replica():
    services = compose("docker-compose.yml")["services"]
    mounted = [v.split(":")[0] for s in ("proxy", "prometheus") for v in services[s]["volumes"] if v.startswith("./")]
    assert mounted == ["./deploy/nginx.conf", "./deploy/prometheus.yml"]
    assert all((ROOT / path).is_file() for path in mounted)
    assert services["prometheus"]["profiles"] == ["monitoring"]
    (job,) = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())["scrape_configs"]
    assert job["metrics_path"] in ROUTES
    assert job["dns_sd_configs"] == [
        {"names": ["asr"], "type": "A", "port": Settings().port, "refresh_interval": "15s"}
    ]
    assert "server asr:8000 resolve;" in (ROOT / "deploy/nginx.conf").read_text()


# Kubernetes


def manifests() -> list[tuple[str, dict]]:
    found = []
    for path in sorted((ROOT / "deploy/kubernetes").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text())]
    return found


def manifest(kind: str, name: str) -> dict:
    return next(doc for _, doc in manifests() if doc["kind"] == kind and doc["metadata"]["name"] == name)


@pytest.mark.parametrize("doc", [doc for _, doc in manifests()], ids=[f"{f}:{d['kind']}" for f, d in manifests()])
def test_kubernetes_manifests_follow_the_schemas_of_a_current_kubernetes(doc):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_kubernetes_schema_check_catches_a_misspelt_field():
    broken = copy.deepcopy(manifest("HorizontalPodAutoscaler", "asr"))
    broken["spec"]["maxReplica"] = broken["spec"].pop("maxReplicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_applies_the_serving_manifests():
    kustomization = yaml.safe_load((ROOT / "deploy/kubernetes/kustomization.yaml").read_text())
    assert kustomization["resources"] == ["serving.yaml", "ingress.yaml", "autoscaling.yaml"]


def test_the_deployment_takes_a_gpu_probes_the_service_and_outlasts_its_drain():
    pod = manifest("Deployment", "asr")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["ports"] == [{"name": "http", "containerPort": Settings().port}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert {"/ready", "/health"} <= ROUTES
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    sleep = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] >= sleep + float(env["ASR_DRAIN_SECONDS"]) + 5
    assert pod["securityContext"]["runAsUser"] == int(instructions(dockerfile_stages()[-1], "USER")[0].split(":")[0])


def test_the_ingress_and_service_route_to_the_pods():
    service = manifest("Service", "asr")
    assert service["spec"]["selector"] == manifest("Deployment", "asr")["spec"]["selector"]["matchLabels"]
    rules = manifest("Ingress", "asr")["spec"]["rules"]
    assert {p["backend"]["service"]["name"] for r in rules for p in r["http"]["paths"]} == {"asr"}
    annotations = manifest("Ingress", "asr")["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600


def test_the_autoscaler_scales_on_a_metric_the_service_exports(server):
    (metric,) = manifest("HorizontalPodAutoscaler", "asr")["spec"]["metrics"]
    name = metric["pods"]["metric"]["name"]
    exported = httpx.get(f"{server[0]}/metrics").text
    assert re.search(rf"^{name} \d", exported, re.MULTILINE)
    (rule,) = yaml.safe_load(manifest("ConfigMap", "prometheus-adapter")["data"]["config.yaml"])["rules"]
    assert rule["name"]["as"] == name and rule["seriesQuery"].startswith(f"{name}{{")


def test_the_training_job_runs_torchrun_with_one_node_per_pod_and_valid_training_flags():
    job = manifest("Job", "asr-train")
    pod = job["spec"]["template"]["spec"]
    command = pod["containers"][0]["command"]
    flags = dict(arg.split("=", 1) for arg in command[: command.index("-m")] if "=" in arg)
    assert command[0] == "torchrun"
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == int(flags["--nnodes"])
    assert flags["--node-rank"] == "$(JOB_COMPLETION_INDEX)"
    assert int(flags["--nproc-per-node"]) == pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
    assert flags["--rdzv-endpoint"] == f"asr-train-0.{pod['subdomain']}:29500"
    assert manifest("Service", pod["subdomain"])["spec"]["clusterIP"] == "None"
    module, *arguments = command[command.index("-m") + 1 :]
    assert module == "training"
    args = build_parser().parse_args(arguments)
    assert args.run.__name__ == "_train" and args.precision == "bf16" and args.resume
