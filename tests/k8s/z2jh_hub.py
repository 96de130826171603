"""Render the Zero to JupyterHub chart and load its hub config as its hub pod does.

z2jh's hub reads fixed paths: ``/usr/local/etc/jupyterhub/{jupyterhub_config.py,z2jh.py}``,
``config/<name>`` and ``secret/values.yaml`` (its ``z2jh.py``), plus what
``hub.extraVolumeMounts`` adds. :func:`mount_hub_files` lays the rendered ConfigMaps and
Secret out under a temp root exactly as the rendered hub Deployment's ``volumeMounts``
say (``items``, ``subPath``), :func:`remapped` sends those mount paths to the temp root
(``open``, ``os.path.exists``/``isdir``, as z2jh.py and jupyterhub_config.py use them), and
:func:`hub_environ` gives the hub container's environment (its ``env`` with ``valueFrom``
resolved, plus the ``<SERVICE>_SERVICE_PORT`` variables Kubernetes injects). The chart's
files are read from the render, never copied into the project.
"""

from __future__ import annotations

import base64
import builtins
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from jupyterhub.app import JupyterHub

from tests.k8s.k8s_helpers import ROOT

Z2JH = Path(os.environ.get("LOCKSTEP_Z2JH_CHART",
                           ROOT.parent / "shared" / "anchors" / "z2jh" / "jupyterhub"))
OVERLAY = ROOT / "helm" / "z2jh" / "lockstep-values.yaml"
CONFIG_DIR = "/usr/local/etc/jupyterhub"


def render_z2jh(helm: str, *values: Path, release: str = "jhub",
                namespace: str = "lockstep") -> list[dict]:
    """Every document ``helm template`` renders for z2jh with ``values`` (hooks included)."""
    args = [a for v in values for a in ("-f", str(v))]
    proc = subprocess.run([helm, "template", release, str(Z2JH), "--namespace", namespace,
                           *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def projects_configmap(environments: Path, name: str = "lockstep-projects") -> dict:
    """The ConfigMap docs/z2jh.md has operators create: ``<project>.project.yaml`` keys."""
    data = {f"{p.parent.name}.project.yaml": p.read_text()
            for p in sorted(environments.glob("*/project.yaml"))}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def hub_deployment(docs: list[dict]) -> dict:
    (hub,) = [d for d in docs if d["kind"] == "Deployment"
              and d["spec"]["template"]["metadata"]["labels"].get("component") == "hub"]
    return hub


def _object_data(obj: dict) -> dict[str, bytes]:
    if obj["kind"] == "Secret":
        out = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        out.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
        return out
    return {k: v.encode() for k, v in (obj.get("data") or {}).items()}


def _volume_files(volume: dict, objects: dict[tuple[str, str], dict]) -> dict[str, bytes]:
    """Relative path -> content of a configMap/secret volume (``items`` honoured)."""
    for kind, key, name_key in (("ConfigMap", "configMap", "name"),
                                ("Secret", "secret", "secretName")):
        if key in volume:
            source = volume[key]
            data = _object_data(objects[(kind, source[name_key])])
            items = source.get("items")
            if items is None:
                return data
            return {item["path"]: data[item["key"]] for item in items}
    return {}  # emptyDir / persistentVolumeClaim: an empty, writable directory


def mount_hub_files(docs: list[dict], root: Path, extra: list[dict] = ()) -> list[str]:
    """Write each volume of the hub container under ``root`` + its mountPath; return the
    mount paths (what :func:`remapped` redirects)."""
    objects = {(d["kind"], d["metadata"]["name"]): d for d in [*docs, *extra]}
    pod = hub_deployment(docs)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (container,) = [c for c in pod["containers"] if c["name"] == "hub"]
    mounts = []
    for mount in container["volumeMounts"]:
        files = _volume_files(volumes[mount["name"]], objects)
        target = root / mount["mountPath"].lstrip("/")
        if "subPath" in mount:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[mount["subPath"]])
        else:
            for rel, content in files.items():
                (target / rel).parent.mkdir(parents=True, exist_ok=True)
                (target / rel).write_bytes(content)
            target.mkdir(parents=True, exist_ok=True)
        mounts.append(mount["mountPath"].rstrip("/") or "/")
    return mounts


def hub_environ(docs: list[dict], namespace: str) -> dict[str, str]:
    """The hub container's environment as the kubelet would set it."""
    objects = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    pod = hub_deployment(docs)["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "hub"]
    env = {}
    for svc in (d for d in docs if d["kind"] == "Service"):
        prefix = svc["metadata"]["name"].upper().replace("-", "_")
        env[f"{prefix}_SERVICE_PORT"] = str(svc["spec"]["ports"][0]["port"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]
        if "fieldRef" in ref:
            assert ref["fieldRef"]["fieldPath"] == "metadata.namespace", ref
            env[item["name"]] = namespace
        elif "secretKeyRef" in ref:
            secret = objects[("Secret", ref["secretKeyRef"]["name"])]
            env[item["name"]] = _object_data(secret)[ref["secretKeyRef"]["key"]].decode()
    return env


@contextmanager
def remapped(root: Path, mounts: list[str], monkeypatch) -> Iterator[None]:
    """``open``/``os.path.exists``/``os.path.isdir`` see ``root`` + path for paths under
    ``mounts`` (the hub's volumes), as inside the hub container; undone on exit."""
    real_open, real_exists, real_isdir = builtins.open, os.path.exists, os.path.isdir

    def where(path):
        text = os.fspath(path) if isinstance(path, str | os.PathLike) else path
        if isinstance(text, str) and any(text == m or text.startswith(m.rstrip("/") + "/")
                                         for m in mounts):
            return str(root / text.lstrip("/"))
        return path

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", lambda p, *a, **k: real_open(where(p), *a, **k))
        m.setattr(os.path, "exists", lambda p: real_exists(where(p)))
        m.setattr(os.path, "isdir", lambda p: real_isdir(where(p)))
        yield


def load_z2jh_config(docs: list[dict], root: Path, monkeypatch, *, namespace: str,
                     extra: list[dict] = ()) -> JupyterHub:
    """A JupyterHub app that has loaded z2jh's rendered ``jupyterhub_config.py`` (and
    through it ``z2jh.py``, the rendered values and ``hub.extraConfig``)."""
    from tornado.httpclient import AsyncHTTPClient

    mounts = mount_hub_files(docs, root, extra)
    for name, value in hub_environ(docs, namespace).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the config inserts its own folder
    monkeypatch.delitem(sys.modules, "z2jh", raising=False)  # z2jh.py memoizes the values
    saved = AsyncHTTPClient._save_configuration()
    app = JupyterHub()
    try:
        with remapped(root, mounts, monkeypatch):
            app.load_config_file("jupyterhub_config.py", path=str(root / CONFIG_DIR[1:]))
    finally:
        AsyncHTTPClient._restore_configuration(saved)
        sys.modules.pop("z2jh", None)
    return app
