"""Does an image hold exactly its lock? The pure diff and the image check."""
