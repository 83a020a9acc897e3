"""The secrets this process knows, and one compiled pattern that finds any of them in any wire form.

Config readers add what they read (STORAGE_SECRET_KEY and the pieces of a SAS token or a
credential file, IMGPROXY_KEY and IMGPROXY_SALT, the links file's keys, again on every reload);
the log filter (proxy.runtime.log_redaction) and the error bodies (proxy.http.middleware) redact with it. It is
one per process, like the logging it serves: a spawned worker adds its config's secrets again.
"""

import re
import threading
from collections.abc import Iterable

from proxy.secrets.forms import Form, key_forms, text_forms

MASK = "********"


class SecretRegistry:
    """A growing set of secrets; `redact` replaces each of their forms with a fixed mask."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: set[Form] = set()
        self._pattern: re.Pattern[str] | None = None  # None while no secret is known: nothing to scan
        # Lowercase runs one of which is in any text that holds a secret; None: some form has no run.
        self._anchors: tuple[str, ...] | None = ()
        self._lock = threading.Lock()  # adds may come from a reload's thread
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Text secrets (keys, tokens, passwords) as configured."""
        self._extend(form for secret in secrets if secret for form in text_forms(secret))

    def add_keys(self, *keys: bytes) -> None:
        """Binary keys (IMGPROXY_KEY, IMGPROXY_SALT), looked for in hex and base64."""
        self._extend(form for key in keys if key for form in key_forms(key))

    @property
    def empty(self) -> bool:
        """True while no secret is known."""
        return self._pattern is None

    def redact(self, text: str) -> str:
        """`text` with every form of every secret replaced by the mask."""
        pattern, anchors = self._pattern, self._anchors
        if pattern is None:
            return text
        if anchors is not None:
            # Substring tests cost a few microseconds per line where the expression costs tens:
            # most lines (the access log's) hold no anchor and are returned as they are.
            lowered = text.lower()
            if not any(anchor in lowered for anchor in anchors):
                return text
        return pattern.sub(MASK, text)

    def _extend(self, forms: Iterable[Form]) -> None:
        with self._lock:
            before = len(self._forms)
            self._forms.update(forms)
            if len(self._forms) == before:
                return
            # Longest first: where one secret contains another (a SAS token and its signature), the
            # whole is masked, not the piece with the rest left showing.
            ordered = sorted(self._forms, key=lambda form: (-len(form.pattern), form.pattern))
            anchors = sorted({form.anchor for form in ordered}, key=len)
            # An anchor that contains a shorter one adds nothing: the shorter is found wherever it is.
            needed = [a for i, a in enumerate(anchors) if not any(b in a for b in anchors[:i])]
            self._anchors = None if "" in anchors else tuple(needed)
            self._pattern = re.compile("|".join(form.pattern for form in ordered))


# The process's registry. Module-level because logging is: every handler of the process shares it.
SECRETS = SecretRegistry()


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every form of the given secrets masked (a registry of its own, not the process's)."""
    return SecretRegistry(secrets).redact(text)
