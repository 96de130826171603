"""lockstep: locked, reproducible, promoted project environments for JupyterHub."""

__version__ = "0.1.0"
