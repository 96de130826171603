"""Sub-commands of the ``lockstep`` CLI, one module each."""
