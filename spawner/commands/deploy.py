"""``lockstep deploy PROJECT --stage prod``: run the project's model service from a stage.

On Docker the service runs from the digest the stage points at now (never a tag), as
containers ``lockstep-svc-<project>-<i>`` published on ``--bind`` (127.0.0.1) at the
service port (``--port`` to change it; replica *i* gets port + i). Deploying again after
a promotion or a rollback rolls the service to the stage's new digest, and keeps the old
one if the new one is not healthy. ``--render k8s`` writes the Deployment, Service and
NetworkPolicy instead (``-o DIR``, else to stdout) for ``kubectl apply``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

from .. import deployer, jobs, services
from ..datamounts import resolve_data_sources
from ..errors import LockstepError
from ..project import load_project
from ..render_kube import GpuPlacement, KubeOptions, KubeRenderError

KUBE_KEYS = ("data_volumes", "workspace_claim_template", "workspace_storage_class",
             "tmp_medium", "runtime_classes", "image_pull_policy", "cpu_request_fraction",
             "memory_request_fraction")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "deploy",
        help="run (or roll) a project's model service from a stage's digest",
        description="Start the project's service (project.yaml 'service:') on Docker from "
        "the digest STAGE points at, or roll it there; or render it for Kubernetes.",
    )
    parser.add_argument("project", help="project name")
    parser.add_argument("--stage", metavar="STAGE",
                        help="stage whose digest to run (default: the last stage)")
    parser.add_argument("--bind", metavar="HOST_IP", default="127.0.0.1",
                        help="host address the port is published on (default 127.0.0.1; "
                        "0.0.0.0 exposes it to the network)")
    parser.add_argument("--port", type=int, default=0,
                        help="host port of replica 0 (default: the service port)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds a new replica has to become healthy (default 60)")
    parser.add_argument("--remove", action="store_true",
                        help="stop and remove the project's service containers")
    parser.add_argument("--status", action="store_true",
                        help="show the service containers and their digests")
    parser.add_argument("--render", choices=["k8s"],
                        help="write Kubernetes objects instead of running on Docker")
    parser.add_argument("-o", "--output", metavar="DIR",
                        help="with --render: folder for deployment/service/networkpolicy.yaml")
    parser.add_argument("--namespace", default="", help="with --render: metadata.namespace")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def _say(message: str) -> None:
    print(f"lockstep deploy: {message}", file=sys.stderr, flush=True)


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def kube_options(settings) -> KubeOptions:
    """``KubeOptions`` from the config's ``c.LockstepKubeSpawner`` section (the site's)."""
    section = settings.config.get("LockstepKubeSpawner", {}) if settings.config else {}
    values = {k: section[k] for k in KUBE_KEYS if k in section}
    if "image_pull_secrets" in section:
        values["image_pull_secrets"] = tuple(
            s["name"] if isinstance(s, dict) else str(s) for s in section["image_pull_secrets"])
    if "gpu_placement" in section:
        values["gpu_placement"] = {k: GpuPlacement(dict(v.get("node_selector", {})),
                                                   tuple(v.get("tolerations", ())))
                                   for k, v in section["gpu_placement"].items()}
    return KubeOptions(**values)


def render_k8s(args, settings, project, image, stage: str) -> int:
    service = services.service_of(project)
    described = {m.name: "kubernetes" for m in project.data}
    spec = services.service_launch_spec(project=project, image=image, stage=stage,
                                        data_sources=described)
    try:
        objects = services.kube_objects(spec, service=service, options=kube_options(settings),
                                        namespace=args.namespace)
    except KubeRenderError as exc:
        raise LockstepError(str(exc)) from None
    if not args.output:
        sys.stdout.write(yaml.dump_all(objects, Dumper=_NoAliases, sort_keys=True))
        return 0
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for obj in objects:
        path = out / f"{obj['kind'].lower()}.yaml"
        path.write_text(yaml.dump(obj, Dumper=_NoAliases, sort_keys=True))
        print(path)
    return 0


def _client():
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:
        raise LockstepError(f"no Docker engine reachable ({exc}); start dockerd or set "
                            "DOCKER_HOST") from None
    return client


def _print(rows: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, sort_keys=True))
        return
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))


def run(args, settings) -> int:
    project = load_project(settings.project_dir(args.project))
    service = services.service_of(project)
    stage = jobs.check_stage(settings, args.stage or settings.stages[-1])
    if args.render:
        return render_k8s(args, settings, project, jobs.stage_image(settings, project.name,
                                                                     stage), stage)
    client = _client()
    api = client.api
    try:
        if args.remove:
            for name in deployer.remove(api, project.name):
                print(f"removed {name}")
            return 0
        if args.status:
            _print(deployer.status(api, project.name), args.json)
            return 0
        binding = services.Binding(host_ip=args.bind, host_port=args.port)
        deployer.check_ports(api, project=project.name, service=service, binding=binding)
        image = jobs.stage_image(settings, project.name, stage)
        spec = services.service_launch_spec(
            project=project, image=image, stage=stage,
            data_sources=resolve_data_sources(project, settings.data_roots))
        runtime, _gpu = jobs.prepare_engine(api, spec, project=project, report=_say)

        def body_for(index: int, publish: bool) -> dict:
            return services.docker_body(spec, service=service, index=index, binding=binding,
                                        publish=publish, runtime=runtime)

        result = deployer.deploy(api, project=project.name, digest=image.digest,
                                 service=service, binding=binding, body_for=body_for,
                                 timeout_s=args.timeout, report=_say)
    finally:
        client.close()
    rows = [{"name": r.name, "action": r.action, "digest": r.digest,
             "url": f"http://{binding.host_ip}:{r.host_port}{service.health}",
             "previous": r.previous, "candidate_healthy_s": round(r.candidate_healthy_s, 2),
             "switch_s": round(r.switch_s, 2)} for r in result.replicas]
    _print(rows, args.json)
    for name in result.removed:
        _say(f"removed surplus replica {name}")
    return 0
