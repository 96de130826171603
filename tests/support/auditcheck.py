"""Shared checks of the parent-trait audits (``spawner.traitaudit``), for both backends."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.hubrun import run_hub


def refused_hub_start(tmp_path: Path, *, parent: str, spawner_class: str, module: str,
                      refused_values: dict) -> None:
    """A real ``jupyterhub`` with every refused trait set exits 1 at start, naming each."""
    body = "".join(f"c.{parent}.{name} = {bad!r}\n"
                   for name, (bad, _) in sorted(refused_values.items()))
    status, log = run_hub(tmp_path, f'c.JupyterHub.spawner_class = "{spawner_class}"\n' + body
                          + f"from {module} import check_config\ncheck_config(c)\n")
    assert status == 1, log
    assert "SettingRefused" in log, log
    for name in refused_values:
        assert f"c.{parent}.{name} = " in log, (name, log)
    assert "Starting proxy" not in log and "Initialized 0 spawners" not in log, log


def _section(text: str, heading: str) -> tuple[int, int]:
    start = text.index(heading) + len(heading)
    end = text.find("\n## ", start)
    return start, len(text) if end < 0 else end


def docs_match(docs: Path, heading: str, table: str) -> None:
    """The section under ``heading`` of ``docs`` is ``table``; ``LOCKSTEP_UPDATE_GOLDEN=1``
    rewrites it from the audit (review the diff)."""
    section = "\n" + table
    text = docs.read_text()
    start, end = _section(text, heading)
    if os.environ.get("LOCKSTEP_UPDATE_GOLDEN"):
        docs.write_text(text[:start] + section + text[end:])
        text = docs.read_text()
        start, end = _section(text, heading)
    assert text[start:end] == section, f"{docs} under {heading.strip()} differs from the audit"
