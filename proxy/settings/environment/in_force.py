"""`preview-proxy config [--json]`: every setting in force, where it came from, and a size or duration as
it was written beside what it was read as.

    CACHE_PREVIEWS_SIZE = 512m  # 536870912; environment
    STORAGE_SECRET_KEY = ********  # environment

The values are Config.describe()'s (secrets masked there); the text as written is shown only for a
value that reads as a size or a duration with a unit, which no secret is.
"""

import json
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass

from proxy.secrets.registry import MASK
from proxy.settings.environment.catalogue import SHOWN_UNDER
from proxy.settings.environment.reading import Environment
from proxy.settings.units import parse_duration, parse_size


@dataclass(frozen=True)
class Setting:
    """One line of `config`: the value in force, the text given when it was a size or a duration, and its source
    (`default`, `environment`, `env file`, `links file`, or `derived` for a value computed from others)."""

    name: str
    value: str
    given: str | None
    source: str


def settings_in_force(described: Mapping[str, str], env: Environment, names: Collection[str]) -> list[Setting]:
    """Each described setting with its source; `names` are the variables a source is looked for under."""
    aliases: dict[str, list[str]] = {}
    for alias, shown_under in SHOWN_UNDER.items():
        aliases.setdefault(shown_under, []).append(alias)
    settings = []
    for name, value in described.items():
        settings.append(Setting(name, value, _as_written(env.given(name), value), _source(name, env, names, aliases)))
    return settings


def as_text(settings: list[Setting]) -> str:
    """`NAME = value  # note` lines; the note holds the source, after what a size or duration given with a
    unit was read as."""
    lines = []
    for setting in settings:
        shown = setting.given if setting.given is not None else setting.value
        note = f"{setting.value}; {setting.source}" if setting.given is not None else setting.source
        lines.append(f"{setting.name} = {shown}  # {note}")
    return "\n".join(lines) + "\n"


def as_json(settings: list[Setting]) -> str:
    """A JSON object: each setting's name to its value, the text given (or null) and its source."""
    return json.dumps({s.name: {k: v for k, v in asdict(s).items() if k != "name"} for s in settings}, indent=2,
                      ensure_ascii=False) + "\n"


def _as_written(text: str | None, value: str) -> str | None:
    """`text` if it is a size or a duration with a unit and differs from `value`; else None."""
    if text is None or MASK in value or text.strip() == value or not any(c.isalpha() for c in text):
        return None
    for parse in (parse_size, parse_duration):
        try:
            parse(text)
        except ValueError:
            continue
        return text.strip()
    return None


def _source(name: str, env: Environment, names: Collection[str], aliases: Mapping[str, list[str]]) -> str:
    if name.startswith("link "):
        return "links file"
    if name not in names:
        return "derived"
    source = env.source(name)
    if source != "default":
        return source
    given = [alias for alias in aliases.get(name, ()) if env.source(alias) != "default"]
    return f"{env.source(given[0])} ({', '.join(given)})" if given else "default"
