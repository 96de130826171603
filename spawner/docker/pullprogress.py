"""Pull progress, pure: ``docker pull`` events folded into bytes and a fraction for people.

``engine.pull`` feeds each event of the engine's pull stream to ``track_pull_event`` and
reports ``pull_fraction`` (downloaded and unpacked bytes of the layers seen so far). No
I/O; ``track_pull_event`` mutates only the dict it is given.
"""

from __future__ import annotations


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
