"""The offline conda channel for tests: real .conda packages built from this machine.

Entry points: ``build.py`` (CLI, :func:`build.build_channel`, :func:`build.cached_channel`),
``fixtures.py`` (pytest fixtures) and ``rattler_run.py`` (solve/install in a subprocess).
"""
