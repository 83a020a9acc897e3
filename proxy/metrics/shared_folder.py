"""The folder where a multi-worker server's workers keep their prometheus-client multiprocess files.

There is one fresh, empty folder per supervisor, in the temporary directory. It is named after the
supervisor's pid, so it never mixes with another server's files (two servers may share a cache
root), and it is removed when the supervisor stops. A supervisor that was SIGKILLed can't remove
its folder. So each new supervisor first removes the folders of supervisors that no longer run.
"""

import logging
import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "preview-proxy-metrics-"

log = logging.getLogger(__name__)


def fresh_metrics_folder() -> Path:
    """A new empty folder for this supervisor, after removing those of dead supervisors."""
    return fresh_folder(PREFIX)


def fresh_folder(prefix: str) -> Path:
    """A new private (0700) folder named `prefix`, this supervisor's pid and a random part, in the temporary
    directory, after removing the folders of that prefix whose supervisors no longer run."""
    root = Path(tempfile.gettempdir())
    for folder in root.glob(f"{prefix}*-*"):
        owner = folder.name.removeprefix(prefix).split("-", 1)[0]
        if owner.isdigit() and not _running(int(owner)) and _ours(folder):
            shutil.rmtree(folder, ignore_errors=True)
            log.info("removed %s, left by a supervisor that is gone", folder)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=root))


def remove_metrics_folder(folder: Path) -> None:
    """Remove the folder when the supervisor stops (every worker has exited)."""
    shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _ours(folder: Path) -> bool:
    try:
        return folder.stat().st_uid == os.getuid()
    except OSError:
        return False
