"""Blocking Docker Engine calls the Docker spawner runs in worker threads.

Each function takes a ``docker.APIClient`` and does one idempotent job: make sure the
project network exists (with its deterministic bridge name), make sure a named volume
exists and is owned by the notebook user, pull an image by digest while reporting
progress, remove a leftover container, list lockstep's bridges, clean up by label.
Nothing here decides policy; the spawner and the pure builders do.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import docker
from docker.errors import APIError, NotFound

from spawner.docker.firewall import BRIDGE_OPTION, bridge_name, network_create_kwargs
from spawner.errors import LockstepError
from spawner.launch.spec import GID, UID
from spawner.settings import ENV_PREFIX

MANAGED = "org.lockstep.managed=true"


class EngineError(LockstepError):
    """The engine refused something lockstep needed."""


def ensure_network(client: docker.APIClient, project: str, name: str, *, internal: bool) -> dict:
    """Inspect (creating first if missing) ``project``'s network; refuse a foreign one."""
    try:
        network = client.inspect_network(name)
    except NotFound:
        try:
            client.create_network(**network_create_kwargs(project, name, internal=internal))
        except APIError as exc:
            if exc.status_code != 409:  # created concurrently by another spawn
                raise
        network = client.inspect_network(name)
    wanted = bridge_name(project)
    if (network.get("Options") or {}).get(BRIDGE_OPTION) != wanted:
        raise EngineError(
            f"Docker network {name!r} exists but was not created by lockstep (its bridge is not "
            f"{wanted!r}, so the project firewall cannot guard it). Remove it with "
            f"`docker network rm {name}` (stop its containers first); lockstep recreates it."
        )
    return network


def lockstep_bridges(client: docker.APIClient) -> list[str]:
    """Bridge interface names of every lockstep network on the engine."""
    networks = client.networks(filters={"label": MANAGED})
    names = []
    for net in networks:
        bridge = (net.get("Options") or {}).get(BRIDGE_OPTION)
        if bridge:
            names.append(bridge)
    return sorted(names)


def volume_init_body(image: str, volume: str, target: str, labels: dict) -> dict:
    """A one-shot container that hands a new volume's root to uid 1000 (pure).

    Root inside it, but only CHOWN/FOWNER, no network, read-only root, fixed command, and
    small memory/CPU/pids limits (it lives about a second, and ``lockstep audit`` may see it).
    """
    code = (f"import os; os.chown({target!r}, {UID}, {GID}); "
            f"os.chmod({target!r}, 0o2775)")
    return {
        "Image": image,
        "User": "0:0",
        "Entrypoint": [f"{ENV_PREFIX}/bin/python", "-c", code],
        "Labels": {**labels, "org.lockstep.role": "volume-init"},
        "HostConfig": {
            "CapDrop": ["ALL"],
            "CapAdd": ["CHOWN", "FOWNER"],
            "SecurityOpt": ["no-new-privileges:true"],
            "ReadonlyRootfs": True,
            "NetworkMode": "none",
            "Memory": 256 * 2**20,
            "NanoCpus": 500_000_000,
            "PidsLimit": 32,
            "Mounts": [{"Type": "volume", "Source": volume, "Target": target,
                        "ReadOnly": False, "VolumeOptions": {"NoCopy": False}}],
        },
    }


def ensure_volume(
    client: docker.APIClient, name: str, labels: dict, *, image: str, target: str, chown: bool
) -> bool:
    """Create volume ``name`` if missing (True if created), owned by uid 1000 when ``chown``."""
    try:
        client.inspect_volume(name)
        return False
    except NotFound:
        pass
    client.create_volume(name=name, driver="local", labels=labels)
    if chown:
        body = volume_init_body(image, name, target, labels)
        container = client.create_container_from_config(body, None)
        try:
            client.start(container["Id"])
            result = client.wait(container["Id"], timeout=120)
            if result.get("StatusCode") != 0:
                logs = client.logs(container["Id"], tail=20).decode(errors="replace")
                raise EngineError(f"could not prepare volume {name} for uid {UID}: {logs}")
        finally:
            client.remove_container(container["Id"], force=True)
    return True


def has_image(client: docker.APIClient, reference: str) -> bool:
    try:
        client.inspect_image(reference)
        return True
    except NotFound:
        return False


def pull_fraction(layers: dict[str, dict[str, int]]) -> tuple[float, str]:
    """(fraction done, message) from per-layer progress; download and extraction count half
    each, so the number never goes backwards when a layer starts extracting. Pure."""
    if not layers:
        return 0.0, "waiting for the registry"
    total = sum(v["total"] for v in layers.values()) or 1
    down = sum(v["down"] for v in layers.values())
    done = sum(v["extract"] for v in layers.values())
    extracted = sum(1 for v in layers.values() if v["total"] and v["extract"] >= v["total"])
    fraction = (down + done) / (2 * total)
    return fraction, (f"downloaded {down / 1e6:.0f} of {total / 1e6:.0f} MB, "
                      f"unpacked {extracted} of {len(layers)} layers")


def track_pull_event(layers: dict[str, dict[str, int]], event: dict) -> None:
    """Fold one ``docker pull`` progress event into ``layers`` (mutates it)."""
    layer, status = event.get("id", ""), event.get("status", "")
    detail = event.get("progressDetail") or {}
    if not layer or status.startswith(("Pulling from", "Digest:", "Status:")):
        return
    entry = layers.setdefault(layer, {"total": 0, "down": 0, "extract": 0})
    if detail.get("total"):
        entry["total"] = max(entry["total"], int(detail["total"]))
    if status == "Downloading":
        entry["down"] = int(detail.get("current", 0))
    elif status in ("Verifying Checksum", "Download complete"):
        entry["down"] = entry["total"]
    elif status == "Extracting":
        entry["down"] = entry["total"]
        entry["extract"] = int(detail.get("current", 0))
    elif status in ("Pull complete", "Already exists"):
        entry["down"] = entry["extract"] = entry["total"]


def pull(client: docker.APIClient, reference: str, report: Callable[[str, float], None]) -> None:
    """Pull ``REPO@sha256:...``, calling ``report(message, fraction)`` about twice a second."""
    repository, _, digest = reference.partition("@")
    layers: dict[str, dict[str, int]] = {}
    last = 0.0
    for event in client.pull(repository, tag=digest, stream=True, decode=True):
        if "error" in event:
            raise EngineError(f"pulling {reference} failed: {event['error']}")
        track_pull_event(layers, event)
        now = time.monotonic()
        if now - last > 0.5:
            last = now
            fraction, message = pull_fraction(layers)
            report(f"Pulling {reference.rsplit('/', 1)[-1][:40]}: {message}", fraction)


def remove_container(client: docker.APIClient, name: str) -> bool:
    """Stop and remove container ``name`` if it exists (True if there was one)."""
    try:
        client.remove_container(name, force=True, v=False)
        return True
    except NotFound:
        return False
    except APIError as exc:
        if exc.status_code == 409:  # removal already in progress
            return True
        raise


def container_logs(client: docker.APIClient, container: str, tail: int = 30) -> str:
    try:
        return client.logs(container, tail=tail).decode(errors="replace")
    except APIError:
        return ""


def cleanup(client: docker.APIClient, *, volumes: bool = False, networks: bool = True) -> None:
    """Remove every lockstep container (and networks, optionally volumes) by label."""
    for container in client.containers(all=True, filters={"label": MANAGED}):
        remove_container(client, container["Id"])
    if networks:
        for net in client.networks(filters={"label": MANAGED}):
            try:
                client.remove_network(net["Id"])
            except APIError:
                pass
    if volumes:
        for volume in (client.volumes(filters={"label": MANAGED}) or {}).get("Volumes") or []:
            try:
                client.remove_volume(volume["Name"], force=True)
            except APIError:
                pass
