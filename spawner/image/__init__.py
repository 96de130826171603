"""Project images: base image, deterministic layers, OCI config/manifest, registry, build."""
