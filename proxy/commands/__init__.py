"""Long-running operator commands that use the server's own components (`preview-proxy warm`)."""
