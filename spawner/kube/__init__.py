"""The Kubernetes backend: pod rendering and the KubeSpawner subclass."""
