"""Registry credentials found the way Docker (and the kubelet's pull secrets) find them.

Sources, in order: ``c.Lockstep.registry_auth_file`` (a mounted
``kubernetes.io/dockerconfigjson`` Secret, i.e. the pods' ``imagePullSecrets``), then the
Docker config (``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``). In each file,
as the Docker CLI does: ``credHelpers[<host>]`` names a helper for that registry, else
``credsStore`` names one for every registry, and the helper is asked with
``docker-credential-<helper> get`` (the host on stdin, JSON ``{"Username", "Secret"}`` on
stdout); else, or when the store has nothing for the host, the file's ``auths`` entry
(``auth`` = base64 ``user:password``, or ``username``/``password``).

:func:`config_lookup` is pure (a parsed config and a host -> what to do); the rest reads
files and runs helpers, with a timeout. Guarantees: a secret never appears in an error
message; a missing or unreadable Docker config means "no credentials"; a configured
``registry_auth_file`` that cannot be read, a helper that is not installed, fails or
answers garbage raises ``CredentialError`` (a ``LockstepError``) naming the file or
helper and the fix. It must not
write any file or cache credentials (callers keep clients for a while and re-read).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import shutil
import subprocess
from pathlib import Path

from spawner.errors import LockstepError

HELPER_TIMEOUT = 20.0  # seconds a credential helper may take (cloud helpers call an API)
NOT_FOUND = "credentials not found"  # what docker-credential-helpers print when they have none


class CredentialError(LockstepError):
    """Credentials that were configured but could not be read."""


def host_keys(host: str) -> tuple[str, ...]:
    """The keys a Docker config may file ``host`` under."""
    return (host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"{host}/v1/")


def _inline(entry: dict) -> tuple[str, str] | None:
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        return (user, password) if user or password else None
    if entry.get("username") and entry.get("password"):
        return str(entry["username"]), str(entry["password"])
    return None


def config_lookup(config: dict, host: str) -> tuple[str | None, tuple[str, str] | None]:
    """(helper to ask or None, inline credentials or None) for ``host`` in one config."""
    helpers = config.get("credHelpers") or {}
    helper = next((helpers[k] for k in host_keys(host) if helpers.get(k)), None)
    helper = helper or config.get("credsStore") or None
    auths = config.get("auths") or {}
    inline = next((c for c in (_inline(auths.get(k) or {}) for k in host_keys(host)) if c), None)
    return helper, inline


def run_helper(helper: str, host: str) -> tuple[str, str] | None:
    """``docker-credential-<helper> get`` for ``host``: (user, secret), or None if it has none."""
    program = f"docker-credential-{helper}"
    path = shutil.which(program)
    if path is None:
        raise CredentialError(
            f"the Docker config names the credential helper {helper!r} for {host}, but "
            f"{program} is not on PATH; install it where lockstep runs (the hub image too), or "
            "remove the credHelpers/credsStore entry")
    try:
        result = subprocess.run([path, "get"], input=host, capture_output=True, text=True,
                                timeout=HELPER_TIMEOUT, env=dict(os.environ))
    except subprocess.TimeoutExpired:
        raise CredentialError(f"{program} get did not answer for {host} within "
                              f"{HELPER_TIMEOUT:.0f} s; check that it works: "
                              f"echo {host} | {program} get") from None
    if result.returncode != 0:
        if NOT_FOUND in (result.stdout + result.stderr).lower():
            return None
        raise CredentialError(f"{program} get failed for {host} (exit {result.returncode}); "
                              f"run `echo {host} | {program} get` to see why")
    try:
        answer = json.loads(result.stdout)
        user, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError):
        raise CredentialError(f"{program} get answered something other than JSON with "
                              "Username and Secret; check the helper's version") from None
    return (user, secret) if secret else None


def read_config(path: Path, *, required: bool) -> dict:
    """A Docker config file as a dict; ``{}`` when it is absent, unless ``required``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        if not required:
            return {}
        raise CredentialError(
            f"c.Lockstep.registry_auth_file {path} could not be read as a Docker config "
            f"({exc.__class__.__name__}); mount the dockerconfigjson Secret's "
            "'.dockerconfigjson' key there, or set registry_auth_file = ''") from None
    return data if isinstance(data, dict) else {}


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def find_credentials(host: str, *, config_path: Path | None = None,
                     auth_file: str = "") -> tuple[str, str] | None:
    """(user, password) for ``host`` from the auth file, then the Docker config; or None."""
    files = [(Path(auth_file), True)] if auth_file else []
    files.append((Path(config_path) if config_path else docker_config_path(), False))
    for path, required in files:
        helper, inline = config_lookup(read_config(path, required=required), host)
        found = run_helper(helper, host) if helper else None
        if found or inline:
            return found or inline
    return None
