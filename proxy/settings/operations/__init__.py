"""Settings of how the server is operated rather than what it serves: its logs."""
