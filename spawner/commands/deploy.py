"""``lockstep deploy PROJECT --stage prod``: run the project's model service from a stage.

On Docker the service runs from the digest the stage points at now (never a tag), as
containers ``lockstep-svc_<project>_<i>`` published on ``--bind`` (127.0.0.1) at the
service port (``--port`` to change it; replica *i* gets port + i), on an engine prepared
as the hub prepares it (``c.LockstepDockerSpawner`` runtime names, internal network,
firewall: ``spawner.docker.site``). Deploying again after
a promotion or a rollback rolls the service to the stage's new digest, and keeps the old
one if the new one is not healthy. A model promoted with the image (``lockstep model``)
is pulled by digest into ``<data_dir>/models/`` and bound read-only at ``/opt/model``
(``LOCKSTEP_MODEL_DIR``, ``LOCKSTEP_MODEL_DIGEST``); a new model rolls the service too.
``--render k8s`` writes the Deployment, Service and
NetworkPolicy instead (``-o DIR``, else to stdout) for ``kubectl apply``;
``--render helm-values`` writes the same objects as the chart's ``services.<project>``
value (``-o FILE``) for ``helm upgrade -f``. Both resolve the stage's digest (and model)
now; a model is fetched by digest by the pod's ``fetch-model`` init container and mounted
read-only at ``/opt/model`` (``spawner.services.kubemodel``); the pod's
site options come from ``c.LockstepKubeSpawner``, or from chart values files (``-f``,
read the way the chart's hub reads them) so the service mounts what the release's user
servers mount.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from spawner.docker import engine, jobs
from spawner.docker.prepare import prepare
from spawner.docker.site import load_docker_site
from spawner.errors import LockstepError
from spawner.kube.render import GpuPlacement, KubeOptions, KubeRenderError
from spawner.launch.datamounts import site_data_sources
from spawner.project import load_project
from spawner.services import deployer
from spawner.services import spec as services
from spawner.services.kubemodel import KubeModel

RENDERS = ("k8s", "helm-values")
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
    parser.add_argument("--render", choices=RENDERS,
                        help="write Kubernetes objects (k8s) or the Helm chart's services "
                        "value (helm-values) instead of running on Docker")
    parser.add_argument("-o", "--output", metavar="PATH",
                        help="with --render k8s: folder for deployment/service/"
                        "networkpolicy.yaml; with --render helm-values: the values file "
                        "(default: stdout)")
    parser.add_argument("-f", "--values", metavar="FILE", action="append", default=[],
                        help="with --render: the chart values files the release uses (as "
                        "helm -f; repeatable): data volumes, workspace claim, tmp medium, "
                        "runtime classes and request fractions come from their singleuser "
                        "section instead of c.LockstepKubeSpawner")
    parser.add_argument("--namespace", default="",
                        help="with --render k8s: metadata.namespace (helm-values objects go "
                        "to the release namespace)")
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


def merge_values(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, maps merged key by key (as ``helm -f base -f top`` does)."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_values(out[key], value)
        else:
            out[key] = value
    return out


def chart_kube_options(values: Mapping[str, Any]) -> KubeOptions:
    """``KubeOptions`` from the chart's values, mapped as the chart's hub maps them
    (``helm/lockstep/files/jupyterhub_config.py``); a key left out keeps the default,
    which is the chart's default too. Pull secrets are not read: the chart adds its own to
    the service pod."""
    single = values.get("singleuser") or {}
    workspace = single.get("workspace") or {}
    found: dict[str, Any] = {
        "data_volumes": single.get("dataVolumes"),
        "workspace_claim_template": workspace.get("claimTemplate"),
        "workspace_storage_class": workspace.get("storageClassName"),
        "tmp_medium": single.get("tmpMedium"),
        "runtime_classes": single.get("runtimeClasses"),
        "cpu_request_fraction": single.get("cpuRequestFraction"),
        "memory_request_fraction": single.get("memoryRequestFraction"),
    }
    kwargs = {k: v for k, v in found.items() if v is not None}
    for key in ("data_volumes", "runtime_classes"):
        if key in kwargs:
            kwargs[key] = dict(kwargs[key])
    for key in ("cpu_request_fraction", "memory_request_fraction"):
        if key in kwargs:
            kwargs[key] = float(kwargs[key])
    if single.get("gpuPlacement"):
        kwargs["gpu_placement"] = {
            k: GpuPlacement(dict(v.get("nodeSelector") or {}), tuple(v.get("tolerations") or ()))
            for k, v in single["gpuPlacement"].items()}
    return KubeOptions(**kwargs)


def load_chart_values(paths: list[str]) -> dict[str, Any]:
    """The chart values files ``paths``, merged in order (a clear error for a bad one)."""
    merged: dict[str, Any] = {}
    for path in paths:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise LockstepError(f"cannot read chart values {path} ({exc}); pass the "
                                "values files you give to helm -f") from None
        if not isinstance(data, Mapping):
            raise LockstepError(f"chart values {path} is not a YAML mapping; pass the "
                                "values files you give to helm -f")
        merged = merge_values(merged, data)
    return merged


def _render_options(args, settings) -> KubeOptions:
    if args.values:
        return chart_kube_options(load_chart_values(args.values))
    return kube_options(settings)


def _kube_error(exc: KubeRenderError, args) -> LockstepError:
    if not args.values:
        return LockstepError(str(exc))
    return LockstepError(f"{exc}\n(with -f chart values these maps are "
                         "singleuser.dataVolumes and singleuser.runtimeClasses there)")


def _service_spec(project, image, stage: str):
    described = {m.name: "kubernetes" for m in project.data}
    return services.service_launch_spec(project=project, image=image, stage=stage,
                                        data_sources=described)


def helm_values_text(values: Mapping[str, Any]) -> str:
    """The values file ``--render helm-values`` writes: a comment naming each project's
    stage and digest and how to use the file, then the YAML (sorted, no anchors)."""
    lines = [f"# services.{name}: stage {entry['stage']} = {entry['image']}"
             for name, entry in sorted(values["services"].items())]
    lines.append("# re-render after each promotion, then: helm upgrade --install RELEASE "
                 "helm/lockstep -f VALUES -f THIS_FILE")
    return "\n".join(lines) + "\n" + yaml.dump(dict(values), Dumper=_NoAliases, sort_keys=True)


def kube_model(settings, project: str, stage: str, secret: str = "") -> KubeModel | None:
    """The model ``stage`` holds, as the pod fetches it (None: the stage holds none).
    Reads the ``model-<stage>`` tag only; nothing is pulled here."""
    from spawner.models import store

    with store.endpoint(settings, project, stage) as ep:
        digest = store.stage_model(ep, stage)
        if not digest:
            return None
        _say(f"model {digest} of {stage}: fetched by the pod, read-only at "
             f"{services.MODEL_TARGET}")
        return KubeModel(digest, ep.client.base_url, ep.repository, secret)


def _chart_pull_secret(args) -> str:
    """The first ``imagePullSecrets`` of the chart values (the model's read credential)."""
    if not args.values:
        return ""
    found = load_chart_values(args.values).get("imagePullSecrets") or []
    return next((s["name"] if isinstance(s, dict) else str(s) for s in found), "")


def render_helm_values(args, settings, project, image, stage: str) -> int:
    spec = _service_spec(project, image, stage)
    model = kube_model(settings, project.name, stage, _chart_pull_secret(args))
    try:
        values = services.helm_values(spec, service=services.service_of(project),
                                      options=_render_options(args, settings), model=model)
    except KubeRenderError as exc:
        raise _kube_error(exc, args) from None
    text = helm_values_text(values)
    if not args.output:
        sys.stdout.write(text)
        return 0
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(path)
    return 0


def render_k8s(args, settings, project, image, stage: str) -> int:
    spec = _service_spec(project, image, stage)
    model = kube_model(settings, project.name, stage)
    try:
        objects = services.kube_objects(spec, service=services.service_of(project),
                                        options=_render_options(args, settings),
                                        namespace=args.namespace, model=model)
    except KubeRenderError as exc:
        raise _kube_error(exc, args) from None
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


def _print(rows: list[dict], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, sort_keys=True))
        return
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))


def _stage_model(settings, project: str, stage: str) -> services.ModelMount | None:
    """The model ``stage`` holds, pulled to the local cache (None: the stage has none)."""
    from spawner.models import store

    found = store.serve(settings, project, stage)
    if found is None:
        return None
    _say(f"model {found[0]} of {stage}: read-only at {services.MODEL_TARGET}")
    return services.ModelMount(found[0], str(found[1]))


def run(args, settings) -> int:
    project = load_project(settings.project_dir(args.project))
    service = services.service_of(project)
    stage = jobs.check_stage(settings, args.stage or settings.stages[-1])
    if args.render == "helm-values" and args.namespace:
        raise LockstepError("--namespace applies to --render k8s; the chart puts services "
                            "in the release namespace (helm --namespace)")
    if args.render:
        render = render_helm_values if args.render == "helm-values" else render_k8s
        return render(args, settings, project, jobs.stage_image(settings, project.name, stage),
                      stage)
    site = load_docker_site(settings)
    if site.network_internal and not (args.remove or args.status):
        raise LockstepError(
            f"this site sets c.LockstepDockerSpawner.network_internal = True: project networks "
            f"are --internal, and Docker publishes no port of a container on an internal "
            f"network, so {project.name!r}'s service could not be reached on port "
            f"{args.port or service.port}. Serve it from a Docker host whose site leaves "
            "network_internal off, or on Kubernetes (`lockstep deploy --render k8s`).")
    api = engine.connect(timeout=120)
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
        model = _stage_model(settings, project.name, stage)
        spec = services.service_launch_spec(
            project=project, image=image, stage=stage,
            data_sources=site_data_sources(project, settings), model=model)
        ready = prepare(api, spec, project=project, site=site, chown=True,
                        notebooks_dir=settings.notebooks_dir,
                        report=lambda message, _fraction: _say(message))

        def body_for(index: int, publish: bool) -> dict:
            return services.docker_body(spec, service=service, index=index, binding=binding,
                                        publish=publish, runtime=ready.runtime,
                                        recursive_read_only=ready.recursive_read_only)

        result = deployer.deploy(api, project=project.name, digest=image.digest,
                                 service=service, binding=binding, body_for=body_for,
                                 timeout_s=args.timeout, report=_say,
                                 model=model.digest if model else "")
    finally:
        api.close()
    rows = [{"name": r.name, "action": r.action, "digest": r.digest,
             "url": f"http://{binding.host_ip}:{r.host_port}{service.health}",
             "previous": r.previous, "model": model.digest if model else "",
             "candidate_healthy_s": round(r.candidate_healthy_s, 2),
             "switch_s": round(r.switch_s, 2)} for r in result.replicas]
    _print(rows, args.json)
    for name in result.removed:
        _say(f"removed surplus replica {name}")
    return 0
