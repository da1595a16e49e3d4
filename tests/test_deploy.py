"""The scale-out deployment files (deploy/): they parse, and they say what the design needs: one shared output
volume at the same path on every Ray node and replica, replicas that run `--jobs ray` statelessly with a command
line this server accepts, and the KubeRay/Kubernetes objects with their required keys."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from mcp_server.cli import build_parser, config_from_args

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def _server_argv(shell_line: str) -> list[str]:
    """The ml-lab-mcp arguments in `ray start ... && exec ml-lab-mcp ARGS`."""
    words = shlex.split(shell_line)
    return words[words.index("ml-lab-mcp") + 1 :]


def test_compose_has_a_ray_head_a_worker_and_two_stateless_replicas_on_one_shared_volume(tmp_path):
    spec = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = spec["services"]
    assert set(services) == {"ray-head", "ray-worker", "replica-a", "replica-b"}
    assert "outputs" in spec["volumes"]
    for name, svc in services.items():
        assert "outputs:/data/outputs" in svc["volumes"], name
        assert svc["environment"]["ML_LAB_OUTPUT_DIR"] == "/data/outputs", name
        assert svc["build"]["args"]["EXTRAS"] == "[ray]", name
    assert "--head" in services["ray-head"]["entrypoint"]
    assert "--address=ray-head:6379" in services["ray-worker"]["entrypoint"]
    assert services["replica-a"]["ports"] != services["replica-b"]["ports"]
    for name in ("replica-a", "replica-b"):
        argv = _server_argv(services[name]["entrypoint"][-1])
        args = build_parser().parse_args([*argv, "--output-dir", str(tmp_path)])
        cfg = config_from_args(args)
        assert args.stateless and args.transport == "streamable-http"
        assert (cfg.jobs.backend, cfg.jobs.ray_address) == ("ray", "ray-head:6379")
        assert "ML_LAB_AUTH_TOKEN" in services[name]["environment"]  # required off loopback


def test_kubernetes_example_has_a_raycluster_replicas_and_a_readwritemany_volume(tmp_path):
    docs = [
        d for f in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d
    ]
    by_kind = {d["kind"]: d for d in docs}
    assert set(by_kind) >= {"RayCluster", "Deployment", "Service", "PersistentVolumeClaim", "Secret"}
    for d in docs:
        assert d["apiVersion"] and d["metadata"]["name"], d
    pvc = by_kind["PersistentVolumeClaim"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]

    cluster = by_kind["RayCluster"]
    assert cluster["apiVersion"] == "ray.io/v1"
    pods = [cluster["spec"]["headGroupSpec"]["template"]] + [
        g["template"] for g in cluster["spec"]["workerGroupSpecs"]
    ]
    deployment = by_kind["Deployment"]
    pods.append(deployment["spec"]["template"])
    for pod in pods:  # every Ray node and replica mounts the one claim at the same path
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]}
        mounts = {
            m["mountPath"]: claims[m["name"]] for c in pod["spec"]["containers"] for m in c["volumeMounts"]
        }
        assert mounts == {"/data/outputs": pvc["metadata"]["name"]}

    head_svc = f"{cluster['metadata']['name']}-head-svc"  # the Service KubeRay makes for the head
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    argv = _server_argv(container["args"][0])
    cfg = config_from_args(build_parser().parse_args([*argv, "--output-dir", str(tmp_path)]))
    assert (cfg.jobs.backend, cfg.jobs.ray_address) == ("ray", f"{head_svc}:6379")
    assert "--stateless" in argv and f"--address={head_svc}:6379" in container["args"][0]
    assert (
        deployment["spec"]["selector"]["matchLabels"] == deployment["spec"]["template"]["metadata"]["labels"]
    )
    assert by_kind["Service"]["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
