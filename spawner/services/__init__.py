"""Model services: the pure spec and objects, and the Docker deployer."""
