"""The resource variables a server reads, from the limits lockstep actually applies.

JupyterHub's ``Spawner.get_env`` sets ``MEM_LIMIT``, ``CPU_LIMIT``, ``MEM_GUARANTEE`` and
``CPU_GUARANTEE`` from the site's ``c.Spawner.*`` values, and tools in the server (e.g.
jupyter-resource-usage) show them. lockstep applies the smaller of the project's
``resources`` and the site's limits, so those variables would name a limit the container
does not have. Both renderers replace them with the effective values, in JupyterHub's own
spellings (bytes as an integer, CPUs as a float). Pure; never reads the environment.
"""

from __future__ import annotations


def limit_env(*, memory: float | None, cpu: float | None,
              memory_guarantee: float | None = None,
              cpu_guarantee: float | None = None) -> dict[str, str]:
    """The variables for the given effective values (bytes, CPUs); None or 0 leaves one out."""
    values = {"MEM_LIMIT": memory, "MEM_GUARANTEE": memory_guarantee}
    env = {name: str(int(v)) for name, v in values.items() if v}
    env.update({name: str(float(v)) for name, v in
                {"CPU_LIMIT": cpu, "CPU_GUARANTEE": cpu_guarantee}.items() if v})
    return env
