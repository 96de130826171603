"""Suite-wide fixtures, as plugins: the offline conda channels (built once, cached by their
inputs) and the real Docker engine and registry (``tests/support/engine.py``)."""

pytest_plugins = ["tests.channel.fixtures", "tests.support.engine"]
