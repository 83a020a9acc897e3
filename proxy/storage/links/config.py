"""The links file (REMOTE_LINKS_PATH, default DATA_PATH/remote_links.yml), read and checked whole.

Read at start-up (an error stops it) and again on SIGHUP (an error keeps the file in use). Every
error is one line naming the file, the entry and the field, and never quotes a secret:

    REMOTE_LINKS_PATH='/data/remote_links.yml': entry 'my-boats': field 'secret_key': expected ...

Nor does it quote a name the file should not hold: a SAS token pasted without its `secret_key:`
is read by YAML as a field name, so an unknown field is given by its position, never its text.
Each file read adds its secrets to the process's registry (proxy.secrets.registry) before anything
can log them.
"""

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from proxy.secrets.registry import SECRETS
from proxy.settings.errors import ConfigError
from proxy.settings.revalidation import describe_revalidate
from proxy.storage.config import StorageConfig, mask
from proxy.storage.links.entry import FIELDS, NAME, LinkEntry, parse_entry
from proxy.storage.links.errors import LinkFieldError

# A links file is a handful of entries; anything this big is not one (and is not read into memory).
MAX_FILE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class LinksConfig:
    """The entries of the links file; none when the default file is absent."""

    path: Path
    required: bool  # REMOTE_LINKS_PATH was set: the file must exist
    entries: tuple[LinkEntry, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str], data_path: Path, base: StorageConfig) -> "LinksConfig":
        """Read REMOTE_LINKS_PATH's file; raise ConfigError (one line) if it is wrong."""
        text = (env.get("REMOTE_LINKS_PATH") or "").strip()
        return read_links(Path(text) if text else data_path / "remote_links.yml", bool(text), base)

    def reread(self, base: StorageConfig) -> "LinksConfig":
        """The same file read again (SIGHUP). Blocks: run it in an executor."""
        return read_links(self.path, self.required, base)

    def masked(self) -> dict[str, str]:
        """One line per entry for `preview-proxy config`: what it reaches, keys masked."""
        described = {"REMOTE_LINKS_PATH": f"{self.path} ({len(self.entries)} entries)"}
        for entry in self.entries:
            storage = entry.storage
            where = str(storage.root) if entry.provider == "fs" else storage.endpoint or "(provider default)"
            described[f"link {entry.name}"] = (
                f"{entry.provider} {where} buckets={','.join(entry.buckets)} access_key={mask(storage.access_key)} "
                f"secret_key={mask(storage.secret_key)} iam_role={storage.iam_role or '(unset)'} "
                f"credentials_path={storage.credentials_path or '(unset)'}"
                + ("" if entry.provider == "fs" else f" revalidate={describe_revalidate(entry.revalidate)}"))
        return described

    def secrets(self) -> tuple[str, ...]:
        """Every entry's secrets, longest first (see StorageConfig.secrets)."""
        pieces = {piece for entry in self.entries for piece in entry.storage.secrets()}
        return tuple(sorted(pieces, key=len, reverse=True))


def read_links(path: Path, required: bool, base: StorageConfig) -> LinksConfig:
    """Read and check the whole file. Blocks (file reads). Raises ConfigError."""
    label = f"REMOTE_LINKS_PATH={str(path)!r}"
    document = _load(path, required, label)
    if document is None:
        return LinksConfig(path, required)
    if not isinstance(document, dict):
        raise ConfigError(f"{label}: expected a mapping of names to entries")
    entries: list[LinkEntry] = []
    owner: dict[tuple[str, str], str] = {}  # (provider kind, bucket) -> entry name
    for number, (name, raw) in enumerate(document.items(), start=1):
        try:
            entry = parse_entry(name, raw, base)
        except LinkFieldError as error:
            raise ConfigError(f"{label}: {_entry_label(name, number)}: {_field_label(error.field, raw)}: "
                              f"{error}") from None
        for bucket in entry.buckets:
            other = owner.setdefault((entry.provider, bucket), entry.name)
            if other != entry.name:
                raise ConfigError(f"{label}: entry {entry.name!r}: field 'buckets': {bucket!r} is already "
                                  f"listed by entry {other!r}; a link must name one provider")
        entries.append(entry)
    config = LinksConfig(path, required, tuple(entries))
    SECRETS.add(*config.secrets())
    return config


def _entry_label(name: Any, number: int) -> str:
    """`entry 'name'`; a name that is not a valid one (it may be a pasted secret) by its place only."""
    if isinstance(name, str) and NAME.fullmatch(name):
        return f"entry {name!r}"
    return f"entry #{number} (its name is not shown)"


def _field_label(field: str, raw: Any) -> str:
    """`field 'name'` for the fields a links file has; any other by its place in the entry, not its text."""
    if field in FIELDS or field == "name":
        return f"field {field!r}"
    names = [str(key) for key in raw] if isinstance(raw, Mapping) else []
    place = f" #{names.index(field) + 1}" if field in names else ""
    # A typo gets the field it resembles, which says what was meant without repeating what was written.
    close = difflib.get_close_matches(field, FIELDS, n=1, cutoff=0.75)
    return f"field{place} (its text not shown{f'; did you mean {close[0]!r}?' if close else ''})"


def _load(path: Path, required: bool, label: str) -> Any:
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{label}: no such file") from None
        return None
    except OSError as error:
        raise ConfigError(f"{label}: {error.strerror or type(error).__name__}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{label}: larger than {MAX_FILE_BYTES} bytes; not a links file")
    try:
        return yaml.load(data, Loader=_UniqueKeyLoader)  # a SafeLoader: plain data only, no Python objects
    except yaml.MarkedYAMLError as error:
        # Only the position and the problem: the parser's snippet of the line could show a secret.
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise ConfigError(f"{label}: not valid YAML at {where}: {error.problem or 'syntax error'}") from None
    except yaml.YAMLError:
        raise ConfigError(f"{label}: not valid YAML") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a name given twice (YAML would keep the last one silently)."""

    _root: yaml.Node | None = None

    def construct_document(self, node: yaml.Node) -> Any:
        self._root = node
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                # The place says which; the text is shown only for an entry's name or a field's (any
                # other text may be a pasted secret).
                shown = key in FIELDS or (node is self._root and NAME.fullmatch(key))
                what = repr(key) if shown else "a name"
                raise yaml.constructor.ConstructorError(
                    None, None, f"{what} appears twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
