"""Stopping a peer process we started: politely, then surely, never waiting without bound."""

import subprocess


def stop_process(process: subprocess.Popen, grace: float = 10.0) -> None:  # type: ignore[type-arg]
    """SIGTERM, then SIGKILL if it hasn't gone within `grace` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
