# jupyterhub_config.py of the lockstep Helm chart (ConfigMap <release>-lockstep-hub).
#
# Static Python: every site choice comes from values.json, which the chart renders from
# its values next to this file, so this file is the same for every install and is tested
# as it is (tests/k8s/test_hub_config.py). Secrets come from the environment
# (<release>-lockstep-secret), never from values.json.
# ruff: noqa: F821  (``c`` and ``get_config`` are given by JupyterHub's config loader)
import json
import os
from pathlib import Path

here = Path(os.environ.get("LOCKSTEP_HUB_CONFIG_DIR") or Path(__file__).parent)
values = json.loads((here / "values.json").read_text())
names = values["names"]
single = values["singleuser"]
site = values["lockstep"]

# -- hub and proxy: the proxy runs in its own pod and is not started by the hub -------
c.JupyterHub.spawner_class = "lockstep-kube"
c.JupyterHub.hub_bind_url = "http://:8081"
c.JupyterHub.hub_connect_url = f"http://{names['hub']}:8081"
c.JupyterHub.cleanup_servers = False
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = f"http://{names['proxyApi']}:8001"
if os.environ.get("LOCKSTEP_DB_URL"):
    c.JupyterHub.db_url = os.environ["LOCKSTEP_DB_URL"]
else:
    c.JupyterHub.db_url = "sqlite:////srv/jupyterhub/jupyterhub.sqlite"

# -- lockstep site settings (c.Lockstep.*) --------------------------------------------
c.Lockstep.environments_dir = "/srv/lockstep/environments"
c.Lockstep.data_dir = "/srv/jupyterhub/lockstep"
c.Lockstep.registry = site["registry"]
c.Lockstep.stage_registries = dict(site.get("stageRegistries") or {})
c.Lockstep.stages = list(site["stages"])
c.Lockstep.insecure_registries = list(site.get("insecureRegistries") or [])

# -- the spawner: LockstepKubeSpawner (a KubeSpawner) ---------------------------------
k = c.LockstepKubeSpawner
k.port = int(single["port"])
k.start_timeout = int(single["startTimeout"])
k.data_volumes = dict(single.get("dataVolumes") or {})
k.workspace_claim_template = single["workspace"]["claimTemplate"]
k.workspace_storage_class = single["workspace"].get("storageClassName") or ""
k.home_storage = single["home"]["storage"]
k.home_size = single["home"]["size"]
k.home_storage_class = single["home"].get("storageClassName") or ""
k.tmp_medium = single.get("tmpMedium") or ""
k.gpu_placement = {
    key: {"node_selector": dict(v.get("nodeSelector") or {}),
          "tolerations": list(v.get("tolerations") or [])}
    for key, v in (single.get("gpuPlacement") or {}).items()
}
k.runtime_classes = dict(single.get("runtimeClasses") or {})
k.cpu_request_fraction = float(single["cpuRequestFraction"])
k.memory_request_fraction = float(single["memoryRequestFraction"])
k.image_pull_secrets = [s["name"] for s in values.get("imagePullSecrets") or []]
k.delete_stopped_pods = True

# -- login: each person with their own identity (hub.auth). oauth: GenericOAuthenticator;
# its client secret comes from a Secret as $OAUTH_CLIENT_SECRET (oauthenticator reads it
# there), never from values.json. custom: hub.config / hub.extraConfig name the login.
auth = values["hub"].get("auth") or {"type": "oauth", "oauth": {}}
if auth["type"] == "oauth":
    oauth = auth["oauth"]
    c.JupyterHub.authenticator_class = "generic-oauth"
    g = c.GenericOAuthenticator
    g.client_id = oauth["clientId"]
    g.authorize_url = oauth["authorizeUrl"]
    g.token_url = oauth["tokenUrl"]
    g.userdata_url = oauth["userdataUrl"]
    g.oauth_callback_url = oauth["callbackUrl"]
    g.scope = list(oauth["scope"])
    g.username_claim = oauth["usernameClaim"]
    if oauth.get("allowedGroups") or oauth.get("adminGroups"):
        g.manage_groups = True  # hub groups from the token: members.groups work as is
        g.auth_state_groups_key = f"oauth_user.{oauth['groupsClaim']}"
        g.allowed_groups = set(oauth.get("allowedGroups") or [])
        g.admin_groups = set(oauth.get("adminGroups") or [])

# -- anything else: hub.config (c.<Class>.<trait> = value), then hub.extraConfig -----
for cls_name, traits in (values["hub"].get("config") or {}).items():
    for trait, value in (traits or {}).items():
        setattr(c[cls_name], trait, value)
if values["hub"].get("extraConfig"):
    exec(compile(values["hub"]["extraConfig"], "hub.extraConfig", "exec"))  # noqa: S102

# -- the lockstep service (/services/lockstep/), started by the hub in this pod, after
# hub.config/extraConfig so it gets their c.Lockstep values too. The proxy reaches it on
# the hub Service (lockstepService.port); it binds every interface of the hub pod (the
# hub NetworkPolicy admits the proxy alone there). The registry write credential
# (lockstepService.registryCredential) is a folder with config.json, handed to the
# service process alone as DOCKER_CONFIG.
service = values.get("service") or {"enabled": False}
if service["enabled"]:
    from spawner.hubservice.config import service_config

    service_config(c, port=int(service["port"]), ip="0.0.0.0", host=names["hub"],
                   registry_credentials=service.get("registryCredentialDir") or None)

# -- last: refuse KubeSpawner traits that would weaken the pods, naming each (hub start)
from spawner.kube.spawner import check_config  # noqa: E402

check_config(c)
