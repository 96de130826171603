"""A command whose extra is missing is listed and, when run, names the extra: no traceback."""

from __future__ import annotations

import builtins

from spawner import cli


def test_missing_extra_names_the_install_line(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_docker(name, *args, **kwargs):
        if name == "docker" or name.startswith("docker."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_docker)
    for mod in [m for m in list(__import__("sys").modules) if m.startswith("spawner.commands.")
                or m == "spawner.docker.engine" or m == "docker" or m.startswith("docker.")]:
        monkeypatch.delitem(__import__("sys").modules, mod)
    assert cli.main(["run", "forecast", "--stage", "dev", "--", "true"]) == 2
    err = capsys.readouterr().err
    assert "lockstep[docker]" in err and "'docker'" in err
    assert "Traceback" not in err


def test_an_unknown_missing_module_is_not_hidden(monkeypatch):
    parser = __import__("argparse").ArgumentParser()
    sub = parser.add_subparsers()
    exc = ModuleNotFoundError("No module named 'spawner.nope'", name="spawner.nope")
    try:
        cli._missing_extra(sub, "x", exc)
    except ModuleNotFoundError as raised:
        assert raised is exc
    else:
        raise AssertionError("a broken import inside lockstep must not be dressed as an extra")
