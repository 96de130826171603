"""A fake Kubernetes API (kmock) that rejects what a real API server, under the chart's Role,
would reject: every created object is validated with ``kubernetes-validate --strict`` and
every request the hub makes must be granted by the hub Role that ``helm template`` renders.

Requests sent with the ``X-Test-Actor: kubelet`` header (the tests' stand-in for a node)
are exempt from the Role, not from validation. Each refusal is answered as the API would
(403 or 422) *and* recorded in ``server.violations``; the ``api`` fixture fails the test
when any was recorded, so a spawner that retries past the error still fails.
"""

from __future__ import annotations

import uuid

import kmock
from traitlets.config import Config

from tests.k8s.k8s_helpers import K8S_VERSIONS

NS = "lockstep"
POD_IP = "10.1.2.3"
KUBELET = {"X-Test-Actor": "kubelet"}
VERBS = {kmock.action.CREATE: "create", kmock.action.DELETE: "delete",
         kmock.action.UPDATE: "patch", kmock.action.LIST: "list",
         kmock.action.WATCH: "watch", kmock.action.FETCH: "get"}


def granted(rules: list[dict], group: str, plural: str, verb: str) -> bool:
    """Whether a Role's ``rules`` allow ``verb`` on ``group``/``plural``."""
    return any((group in r.get("apiGroups", []) or "*" in r.get("apiGroups", []))
               and (plural in r.get("resources", []) or "*" in r.get("resources", []))
               and (verb in r.get("verbs", []) or "*" in r.get("verbs", []))
               for r in rules)


def strict_errors(obj: dict) -> list[str]:
    import kubernetes_validate

    errors = []
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{version}: {exc.message} at {list(exc.path)}")
    return errors


class ApiServer(kmock.KubernetesEmulator):
    """kmock's emulator plus what a real API server adds on create (namespace, uid,
    creationTimestamp, resourceVersion: KubeSpawner's reflectors key pods by them), strict
    validation of created objects and the hub Role's verbs."""

    role_rules: list[dict] | None = None
    violations: list[str]

    async def __call__(self, raw_request):
        if raw_request.query.get("watch") == "True":  # kmock reads only watch=true
            raw_request = raw_request.clone(rel_url=raw_request.rel_url.update_query(watch="true"))
        return await super().__call__(raw_request)

    def _refusal(self, request) -> kmock.KubernetesError | None:
        res = request.resource
        verb = VERBS.get(request.action, str(request.action).lower())
        kubelet = request.headers.get("X-Test-Actor") == "kubelet"
        if self.role_rules is not None and not kubelet and not granted(
                self.role_rules, res.group or "", res.plural, verb):
            text = f"the hub Role does not grant {verb} on {res.plural}"
            self.violations.append(text)
            return kmock.KubernetesError(status=403, reason="Forbidden", message=text)
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            errors = strict_errors(request.data)
            if errors:
                name = request.data.get("metadata", {}).get("name", "?")
                text = f"{request.data.get('kind')}/{name} is invalid: {'; '.join(errors)}"
                self.violations.append(text)
                return kmock.KubernetesError(status=422, reason="Invalid", message=text)
        return None

    async def _handle(self, request):
        if request.resource is not None:
            if not hasattr(self, "violations"):
                self.violations = []
            refusal = self._refusal(request)
            if refusal is not None:
                raise refusal
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            meta.setdefault("namespace", request.namespace)
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
            meta.setdefault("resourceVersion", "1")
            if request.resource.plural == "pods":
                request.data.setdefault("status", {"phase": "Pending"})
        return await super()._handle(request)


def pods(api) -> dict[str, dict]:
    return {name: obj.raw for (res, ns, name), obj in api.objects.items()
            if res.plural == "pods" and ns == NS and not obj.deleted}


def claims(api) -> dict[str, dict]:
    return {name: obj.raw for (res, ns, name), obj in api.objects.items()
            if res.plural == "persistentvolumeclaims" and not obj.deleted}


async def patch_pod(api, name: str, status: dict) -> None:
    resp = await api.request("PATCH", f"/api/v1/namespaces/{NS}/pods/{name}",
                             json={"status": status}, headers=KUBELET)
    assert resp.status == 200, await resp.text()


def container_status(ready: bool, state: dict) -> dict:
    return {"name": "notebook", "ready": ready, "state": state, "image": "x", "imageID": "x",
            "restartCount": 0}


RUNNING = {"phase": "Running", "podIP": POD_IP,
           "containerStatuses": [container_status(True, {"running": {}})]}


def config(api, tmp_path, environments: str = "environments") -> Config:
    c = Config()
    c.Lockstep.environments_dir = environments
    c.Lockstep.data_dir = str(tmp_path / "state")
    c.LockstepKubeSpawner.k8s_api_host = str(api.url).rstrip("/")
    c.LockstepKubeSpawner.namespace = NS
    c.LockstepKubeSpawner.data_volumes = {"forecast/sales": {"pvc": "forecast-sales"}}
    c.LockstepKubeSpawner.start_timeout = 20
    c.LockstepKubeSpawner.k8s_api_request_retry_timeout = 10
    return c
