"""The HTTP face of preview-proxy and its dealings with the outside world (storage providers)."""
