"""Label keys: defined once in spawner/labels.py, documented, and their text pinned."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from spawner import labels

ROOT = Path(__file__).resolve().parents[2]
SPAWNER = ROOT / "spawner"
LITERAL = re.compile(
    r"""(?<![\w.])[rbfuRBFU]{0,2}(["'])org\.lockstep(\.|\1)"""
    r"|\{(?:labels\.)?(?:LABEL_)?PREFIX\}\."
)
"""A string literal that starts with the label prefix (``"org.lockstep.x"``, ``'org.lockstep'``,
f-strings too) or a key built from the prefix (``f"{LABEL_PREFIX}.kind"``). Docstrings that
mention ``org.lockstep.kind`` in running text do not match."""

PINNED = {
    "PREFIX": "org.lockstep",
    "LOCK_HASH": "org.lockstep.lock-hash",
    "BASE": "org.lockstep.base",
    "BASE_KEY": "org.lockstep.base-key",
    "CUDA": "org.lockstep.cuda",
    "JUPYTERLAB": "org.lockstep.jupyterlab",
    "MANAGED": "org.lockstep.managed",
    "PROJECT": "org.lockstep.project",
    "USER": "org.lockstep.user",
    "STAGE": "org.lockstep.stage",
    "DIGEST": "org.lockstep.digest",
    "IMAGE": "org.lockstep.image",
    "SESSION": "org.lockstep.session",
    "SERVER_NAME": "org.lockstep.server-name",
    "KIND": "org.lockstep.kind",
    "ROLE": "org.lockstep.role",
    "GATE": "org.lockstep.gate",
    "SERVICE_PORT": "org.lockstep.service-port",
    "REPLICA": "org.lockstep.replica",
    "HEALTH": "org.lockstep.health",
    "MODEL_DIGEST": "org.lockstep.model-digest",
    "VOLUME": "org.lockstep.volume",
    "RUNTIME": "org.lockstep.runtime",
    "PIDS_LIMIT": "org.lockstep.pids-limit",
}


def spelled_out_keys(root: Path) -> list[str]:
    """``path:line: text`` of every label-key literal under ``root`` outside labels.py."""
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "labels.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if LITERAL.search(line):
                found.append(f"{path.relative_to(root.parent)}:{number}: {line.strip()}")
    return found


def test_no_module_spells_out_a_label_key():
    found = spelled_out_keys(SPAWNER)
    assert not found, "import the key from spawner.labels instead:\n" + "\n".join(found)


def test_the_grep_finds_what_it_must(tmp_path):
    pkg = tmp_path / "spawner"
    pkg.mkdir()
    (pkg / "labels.py").write_text('MANAGED = "org.lockstep.managed"\n')
    (pkg / "bad.py").write_text(
        'A = {"org.lockstep.project": p}\n'
        "B = 'org.lockstep.kind'\n"
        'C = f"org.lockstep.{name}"\n'
        'PREFIX = "org.lockstep"\n'
        '"""Containers carry ``org.lockstep.kind=service``."""\n'  # prose: allowed
        'D = "not org.lockstep.x"\n'  # inside a sentence: allowed
        'E = "org.lockstep:build"\n'  # a CycloneDX property name, not a label
        'F = f"{LABEL_PREFIX}.kind"\n'
        'G = f"{ENV_PREFIX}/bin"\n'  # another prefix: allowed
    )
    assert [f.split(": ", 1)[0] for f in spelled_out_keys(pkg)] == [
        "spawner/bad.py:1", "spawner/bad.py:2", "spawner/bad.py:3", "spawner/bad.py:4",
        "spawner/bad.py:8"]


def test_every_key_keeps_its_text():
    keys = {name: value for name, value in vars(labels).items()
            if name.isupper() and isinstance(value, str)}
    assert keys == PINNED
    assert len(set(keys.values())) == len(keys)  # one key, one name


def test_every_key_has_a_docstring():
    tree = ast.parse((SPAWNER / "labels.py").read_text())
    body = tree.body
    undocumented = []
    for node, following in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.Assign) and node.targets[0].id.isupper():  # type: ignore[attr-defined]
            doc = following.value if isinstance(following, ast.Expr) else None
            if not (isinstance(doc, ast.Constant) and isinstance(doc.value, str) and doc.value):
                undocumented.append(node.targets[0].id)  # type: ignore[attr-defined]
    assert undocumented == []


def test_selector_and_ownership():
    assert labels.selector(labels.KIND, "service") == "org.lockstep.kind=service"
    assert labels.is_lockstep_key("org.lockstep.user")
    assert not labels.is_lockstep_key("org.lockstepper.user")
    assert not labels.is_lockstep_key("com.example.team")
