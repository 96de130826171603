"""Load the chart's rendered hub config into a JupyterHub app, as the hub pod does, and
match NetworkPolicy selectors against labels. Shared by the chart tests."""

from __future__ import annotations

from pathlib import Path

from jupyterhub.app import JupyterHub

from tests.k8s.k8s_helpers import find, helm_template


def hub_files(docs: list[dict], into: Path) -> Path:
    """Write the hub ConfigMap and the projects ConfigMap as the pod mounts them."""
    hub = find(docs, "ConfigMap", "-hub")["data"]
    (into / "etc").mkdir()
    for name, text in hub.items():
        (into / "etc" / name).write_text(text)
    deploy = find(docs, "Deployment", "-hub")
    volume = next(v for v in deploy["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == "projects")
    projects = find(docs, "ConfigMap", "-projects")["data"]
    for item in volume["configMap"]["items"]:
        path = into / "environments" / item["path"]
        path.parent.mkdir(parents=True)
        path.write_text(projects[item["key"]])
    return into


def load_hub(tmp_path: Path, values: Path, helm: str):
    docs = helm_template(helm, values)
    root = hub_files(docs, tmp_path)
    app = JupyterHub()
    app.load_config_file("jupyterhub_config.py", path=str(root / "etc"))
    app.config.Lockstep.environments_dir = str(root / "environments")
    app.config.Lockstep.data_dir = str(tmp_path / "state")
    return app, docs



def matches_selector(selector: dict, labels: dict) -> bool:
    ok = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
    for expr in selector.get("matchExpressions", []):
        value = labels.get(expr["key"])
        ok &= {"In": value in expr.get("values", []),
               "NotIn": value not in expr.get("values", []),
               "Exists": expr["key"] in labels,
               "DoesNotExist": expr["key"] not in labels}[expr["operator"]]
    return ok
