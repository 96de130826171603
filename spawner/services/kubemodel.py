"""The promoted model in a Kubernetes model service: the pod fetches the model artifact by
digest before the service starts, and serves it read-only.

``lockstep deploy`` on Docker binds the model's cached files read-only at ``/opt/model``;
a cluster has no such host folder, so the Deployment's pod gets:

* an ``emptyDir`` volume ``lockstep-model``, filled by an init container ``fetch-model``
  that runs the service's own image (already pinned by digest and pulled, so no extra
  image to trust or mirror) with its python on ``spawner.services.modelfetch``'s text:
  standard library only, it checks the manifest against the digest and every file against
  its layer digest and size before the service starts, and a failed fetch keeps the pod
  from starting (the init container fails, the old replicas keep serving);
* the serving container mounts that volume **read-only** at ``/opt/model`` with
  ``LOCKSTEP_MODEL_DIR`` and ``LOCKSTEP_MODEL_DIGEST``; the pod template carries the model
  digest as an annotation, so a new model rolls the Deployment like a new image;
* registry credentials, when the site has a pull Secret (the first of the pod's
  ``imagePullSecrets``: the model lives in the image's repository), mounted in the init
  container only, as a Docker config (``DOCKER_CONFIG``);
* no workspace: a service that serves its promoted model does not read the project's
  writable workspace, so nothing a dev session writes reaches it, and the pod does not wait
  (Pending) for a workspace claim that only a notebook spawn creates;
* the service's NetworkPolicy, which otherwise denies all egress, admits DNS and the
  registry's port (TCP) for the fetch; NetworkPolicies are per pod, so the serving
  container could open the same ports (it holds no registry credential).

Pure: plain dicts in, new plain dicts out (inputs are never changed); no cluster, registry
or file I/O beyond reading ``modelfetch.py``'s own text once at import.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from spawner.labels import MODEL_DIGEST
from spawner.launch.spec import LaunchSpec
from spawner.settings import ENV_PREFIX

FETCH_SOURCE = (Path(__file__).parent / "modelfetch.py").read_text()
MODEL_TARGET = "/opt/model"
MODEL_VOLUME = "lockstep-model"
CREDENTIAL_VOLUME = "lockstep-model-registry"
CREDENTIAL_DIR = "/var/run/lockstep/registry"
INIT_CONTAINER = "fetch-model"
INIT_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "64Mi"},
    "limits": {"cpu": "1", "memory": "256Mi"},
}


@dataclass(frozen=True)
class KubeModel:
    """A stage's model: its digest and where the pod fetches it from.

    ``base`` is the registry's URL (``https://registry.example.com``; ``http://`` for a site's
    insecure registries), ``repository`` the project's repository in it."""

    digest: str
    base: str
    repository: str
    secret: str = ""  # a dockerconfigjson Secret to read it with ('': the first pull secret)

    @property
    def port(self) -> int:
        parts = urlsplit(self.base)
        return parts.port or (80 if parts.scheme == "http" else 443)


def model_spec(spec: LaunchSpec, model: KubeModel) -> LaunchSpec:
    """``spec`` without the workspace and with the model's environment variables."""
    env = {k: v for k, v in spec.env_dict().items() if k != "LOCKSTEP_WORKSPACE"}
    env.update(LOCKSTEP_MODEL_DIR=MODEL_TARGET, LOCKSTEP_MODEL_DIGEST=model.digest)
    return replace(
        spec,
        mounts=tuple(m for m in spec.mounts if m.kind != "workspace"),
        env=tuple(sorted(env.items())),
    )


def fetch_container(
    serving: dict[str, Any], model: KubeModel, *, credential: bool
) -> dict[str, Any]:
    """The init container: the serving image's python runs ``modelfetch`` into the volume."""
    mounts = [{"name": MODEL_VOLUME, "mountPath": MODEL_TARGET}]
    container: dict[str, Any] = {
        "name": INIT_CONTAINER,
        "image": serving["image"],
        "command": [
            f"{ENV_PREFIX}/bin/python",
            "-c",
            FETCH_SOURCE,
            model.base,
            model.repository,
            model.digest,
            MODEL_TARGET,
        ],
        "resources": copy.deepcopy(INIT_RESOURCES),
        "securityContext": copy.deepcopy(serving.get("securityContext", {})),
    }
    if "imagePullPolicy" in serving:
        container["imagePullPolicy"] = serving["imagePullPolicy"]
    if credential:
        container["env"] = [{"name": "DOCKER_CONFIG", "value": CREDENTIAL_DIR}]
        mounts.append({"name": CREDENTIAL_VOLUME, "mountPath": CREDENTIAL_DIR, "readOnly": True})
    container["volumeMounts"] = mounts
    return dict(sorted(container.items()))


def _pod(pod: dict[str, Any], model: KubeModel) -> None:
    serving = pod["containers"][0]
    secrets = (
        [model.secret] if model.secret else [s["name"] for s in pod.get("imagePullSecrets") or []]
    )
    volumes = [*pod.get("volumes", []), {"name": MODEL_VOLUME, "emptyDir": {}}]
    if secrets:
        volumes.append(
            {
                "name": CREDENTIAL_VOLUME,
                "secret": {
                    "secretName": secrets[0],
                    "defaultMode": 0o440,
                    "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
                },
            }
        )
    pod["volumes"] = sorted(volumes, key=lambda v: v["name"])
    pod["initContainers"] = [
        *pod.get("initContainers", []),
        fetch_container(serving, model, credential=bool(secrets)),
    ]
    serving["volumeMounts"] = sorted(
        [
            *serving.get("volumeMounts", []),
            {"name": MODEL_VOLUME, "mountPath": MODEL_TARGET, "readOnly": True},
        ],
        key=lambda m: m["mountPath"],
    )


def _egress(policy: dict[str, Any], model: KubeModel) -> None:
    policy["spec"]["egress"] = [
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
        {"ports": [{"port": model.port, "protocol": "TCP"}]},
    ]


def with_model(objects: list[dict[str, Any]], model: KubeModel) -> list[dict[str, Any]]:
    """``objects`` (Deployment, Service, NetworkPolicy of ``services.spec.kube_objects``,
    rendered from ``model_spec``) carrying ``model``; new dicts, inputs unchanged."""
    out = copy.deepcopy(objects)
    for obj in out:
        if obj["kind"] == "Deployment":
            template = obj["spec"]["template"]
            _pod(template["spec"], model)
            notes = template["metadata"].setdefault("annotations", {})
            notes[MODEL_DIGEST] = model.digest
            template["metadata"]["annotations"] = dict(sorted(notes.items()))
            obj["metadata"].setdefault("annotations", {})[MODEL_DIGEST] = model.digest
            obj["metadata"]["annotations"] = dict(sorted(obj["metadata"]["annotations"].items()))
        elif obj["kind"] == "NetworkPolicy":
            _egress(obj, model)
    return out
