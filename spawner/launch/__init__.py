"""What a spawn runs: the engine-neutral launch spec, data mounts, requests, access, stages."""
