"""The secrets cloud providers take: an Azure account key or SAS token, a Google service-account file.

Every check raises ConfigError with one line that names the variable and never the value. Each
reader also says which pieces of the secret must be redacted wherever text leaves the process.
"""

import base64
import binascii
import json
import re
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qs, unquote

from proxy.settings.errors import ConfigError

AZURE_ACCOUNT_NAME = re.compile(r"[a-z0-9]{3,24}")
# Fields of a Google credential file that are secret (the rest: type, emails, ids, URLs, are not).
GOOGLE_SECRET_FIELDS = ("private_key", "private_key_id", "client_secret", "refresh_token")
# Long lines of a PEM body are redacted one by one too, so a log that quotes part of a key hides it.
PEM_LINE_MIN = 16


def sas_token(secret: str | None) -> str | None:
    """The SAS token in STORAGE_SECRET_KEY, without its `?`; None when the value is an account key.

    A SAS token is a query string with at least `sv` (version) and `sig` (signature), in any
    order: the portal writes `sp=r&st=...&sv=...&sig=...`, other tools start with `sv=`. An account
    key is base64 and can't contain `&`, so the two never look alike.
    """
    if not secret:
        return None
    token = secret.strip().removeprefix("?")
    fields = parse_qs(token, keep_blank_values=True)
    return token if "sv" in fields and "sig" in fields else None


class AzureProblem(NamedTuple):
    """What is wrong with an Azure account name and key: `part` is `account` or `key`, `reason` says why."""

    part: str
    reason: str


def azure_problem(account: str | None, secret: str | None) -> AzureProblem | None:
    """The one check of an Azure account name and its key or SAS token, for the environment and the links
    file alike (each names the problem in its own terms); None when both are usable. Never quotes the key."""
    if not account:
        return AzureProblem("account", "required: the storage account name")
    if not AZURE_ACCOUNT_NAME.fullmatch(account):
        return AzureProblem("account", "expected an Azure storage account name (3 to 24 lowercase letters and digits)")
    if not secret or not secret.strip():
        return AzureProblem("key", "required: the account key or a SAS token")
    if sas_token(secret) is None and not _is_base64(secret.strip()):
        return AzureProblem("key", "expected an Azure account key (base64) or a SAS token (a query string with "
                                   "sv= and sig=)")
    return None


def check_azure(account: str | None, secret: str | None) -> None:
    """STORAGE_ACCESS_KEY is a storage account name; STORAGE_SECRET_KEY its key or a SAS token."""
    problem = azure_problem(account, secret)
    if problem is None:
        return
    if problem.part == "key":
        raise ConfigError(f"STORAGE_SECRET_KEY: {problem.reason}")
    shown = f"={account!r}" if account else ""  # an account name is not a secret
    raise ConfigError(f"STORAGE_ACCESS_KEY{shown}: {problem.reason} for STORAGE_PROVIDER=azure")


def azure_secret_pieces(secret: str | None) -> tuple[str, ...]:
    """The key itself, and for a SAS token its signature as sent (percent-encoded) and decoded."""
    token = sas_token(secret)
    if token is None:
        return (secret.strip(),) if secret else ()
    signatures = parse_qs(token).get("sig", [])
    encoded = [part.split("=", 1)[1] for part in token.split("&") if part.startswith("sig=")]
    return tuple(dict.fromkeys(s for s in (token, *signatures, *encoded, *map(unquote, encoded)) if s))


def read_service_account(path: Path, label: str | None = None) -> str:
    """The text of STORAGE_CREDENTIALS_PATH (StorageConfig.validate checks what it holds).

    `label` starts the error message (default `STORAGE_CREDENTIALS_PATH='<path>'`; the links file
    names its own field).
    """
    label = label or f"STORAGE_CREDENTIALS_PATH={str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else "not readable UTF-8 text"
        raise ConfigError(f"{label}: {reason}") from None
    return text


def check_service_account(text: str, path: Path, label: str | None = None) -> None:
    """A JSON object with the fields obstore signs with; the message never quotes the file."""
    label = label or f"STORAGE_CREDENTIALS_PATH={str(path)!r}"
    try:
        document = json.loads(text)
    except ValueError:
        raise ConfigError(f"{label}: not valid JSON") from None
    missing = [name for name in ("client_email", "private_key")
               if not isinstance(document, dict) or not isinstance(document.get(name), str)]
    if missing:
        raise ConfigError(f"{label}: expected a service-account JSON file "
                          f"(missing {', '.join(missing)})")


def service_account_pieces(text: str | None) -> tuple[str, ...]:
    """The file's text, its secret fields, and each long line of its private key."""
    if not text:
        return ()
    try:
        document = json.loads(text)
    except ValueError:
        return (text,)
    values = [str(document[name]) for name in GOOGLE_SECRET_FIELDS if isinstance(document, dict) and document.get(name)]
    lines = [line for value in values for line in map(str.strip, value.splitlines())
             if len(line) >= PEM_LINE_MIN and not line.startswith("-----")]
    return tuple(dict.fromkeys((text, *values, *lines)))


def _is_base64(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) > 0
    except (binascii.Error, ValueError):
        return False
