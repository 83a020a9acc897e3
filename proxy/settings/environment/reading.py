"""The environment the settings are read from: the process's variables over an env file, remembering
where each came from and which names the readers looked up.

Looking a name up is what makes it known: every reader goes through this mapping, so a setting that is
read is never reported as unknown (proxy.settings.environment.unknown_names), even before the catalogue
lists it.
"""

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

from dotenv import dotenv_values

from proxy.settings.errors import ConfigError

DEFAULT_ENV_FILE = Path(".env")


class Environment(Mapping[str, str]):
    """Variables by name (the process's win over the file's), the file they may come from, and every name
    looked up so far (`get`, `in` and `[]` all count; iterating does not)."""

    def __init__(self, process: Mapping[str, str], from_file: Mapping[str, str] | None = None,
                 env_file: Path | None = None) -> None:
        self._from_file = dict(from_file or {})
        self._values = {**self._from_file, **process}
        self._process = set(process)
        self.env_file = env_file
        self._looked_up: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self._looked_up.add(name)
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def given(self, name: str) -> str | None:
        """The text of `name` as given, without counting as a look-up."""
        return self._values.get(name)

    @property
    def looked_up(self) -> frozenset[str]:
        """The names the readers asked for, given or not."""
        return frozenset(self._looked_up)

    def source(self, name: str) -> str:
        """`environment`, `env file` or `default` (not given)."""
        if name in self._process:
            return "environment"
        return "env file" if name in self._from_file else "default"


def read_environment(env_file: Path | None, process: Mapping[str, str] | None = None) -> Environment:
    """The process environment over the env file: `env_file` if named (it must exist), else `./.env` if present.

    ConfigError (one line) for a named file that is missing or unreadable: starting on the defaults
    because of a typo in a path would be a silent surprise.
    """
    path = env_file or DEFAULT_ENV_FILE
    process = os.environ if process is None else process
    if env_file is None and not path.is_file():
        return Environment(process)
    if env_file is not None and not path.is_file():
        reason = "is a folder, not a file" if path.is_dir() else "no such file"
        raise ConfigError(f"--env-file {str(path)!r}: {reason}")
    label = f"--env-file {str(path)!r}" if env_file is not None else f"env file {str(path)!r}"
    try:
        with path.open(encoding="utf-8") as stream:
            values = dotenv_values(stream=stream)
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else "not UTF-8 text"
        raise ConfigError(f"{label}: {reason}") from None
    return Environment(process, {name: value for name, value in values.items() if value is not None}, path)
