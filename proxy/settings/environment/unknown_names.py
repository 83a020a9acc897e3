"""Variables under a prefix preview-proxy owns that it does not read: a typo, a setting from another
version, or an imgproxy setting it does not support. Each is one line naming the variable, never its value.

    CACHE_PREVIEW_SIZE (environment) is not a preview-proxy setting and is ignored; did you mean CACHE_PREVIEWS_SIZE?
    IMGPROXY_USE_ETAG (env file) is an imgproxy setting preview-proxy does not support; it is ignored

At start-up they are warnings; `--strict-config` makes them errors.
"""

import difflib
from collections.abc import Callable, Collection, Mapping

from proxy.settings.environment.catalogue import (
    FOREIGN_NAMES,
    KNOWN_NAMES,
    OWNED_PREFIXES,
    SERVICE_LINK_NAME,
    SERVICE_LINK_PORT,
)
from proxy.settings.environment.imgproxy_names import IMGPROXY_DOCUMENTED, IMGPROXY_INSTEAD

# How alike two names must be for one to be offered as what the other meant (difflib's ratio).
CLOSE_ENOUGH = 0.8


def unknown_names(env: Mapping[str, str], looked_up: Collection[str] = (),
                  source: Callable[[str], str] | None = None) -> list[str]:
    """One line for each variable of `env` that is ours by its prefix but read by nothing, in name order.

    `looked_up` are the names read at start-up (known even if the catalogue missed one); `source` says
    where each variable came from (`environment`, `env file`), shown to help find it.
    """
    known = KNOWN_NAMES | set(looked_up)
    prefixes = (*OWNED_PREFIXES, *(f"{name}_" for name in known))
    lines = []
    for name in sorted(env):
        if name in known or name in FOREIGN_NAMES or not name.startswith(prefixes):
            continue
        if _service_link(name, env[name]):
            continue
        where = f"{name} ({source(name)})" if source else name
        lines.append(f"{where} {_what_it_is(name, known)}")
    return lines


def _what_it_is(name: str, known: Collection[str]) -> str:
    if name in IMGPROXY_DOCUMENTED:
        instead = IMGPROXY_INSTEAD.get(name)
        return ("is an imgproxy setting preview-proxy does not support; it is ignored"
                + (f" (preview-proxy has {instead})" if instead else ""))
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=CLOSE_ENOUGH)
    return "is not a preview-proxy setting and is ignored" + (f"; did you mean {close[0]}?" if close else "")


def _service_link(name: str, value: str) -> bool:
    """Whether Kubernetes set this for a Service whose name happens to be one of our prefixes."""
    return bool(SERVICE_LINK_NAME.fullmatch(name)
                or (name.endswith("_PORT") and SERVICE_LINK_PORT.fullmatch(value.strip())))
