"""Software bills of materials from a lock."""
