"""Model files promoted with their image: the OCI artifact (``artifact``, pure), the
(image, model) pair a stage holds (``pairs``, pure), and the registry and cache side
(``store``). Nothing in this package moves a stage's image tag."""
