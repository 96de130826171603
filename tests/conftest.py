"""Suite-wide fixtures: the offline conda channels (built once, cached by their inputs)."""

from channel.fixtures import jupyter_channel, tiny_channel  # noqa: F401
