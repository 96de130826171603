"""The Docker backend: the one engine module, rendering, GPU, runtimes, firewall, CIS, spawner."""
