"""The forms a secret takes on the wire, as regular expressions: what redaction must recognise.

A secret reaches a log line or an error body in whatever form the code that quotes it chose. obstore
percent-encodes a SAS signature with uppercase hex (`%2B`), a form decoder turns `+` into a space,
another encoder leaves `/` alone or writes lowercase hex, and an account key may be written in
base64's url-safe alphabet or without its padding. Listing every combination as plain strings
would not end, so each secret becomes one pattern in which every character matches any of its
encodings (`/` matches `/`, `%2F` and `%2f`).
"""

import base64
import binascii
import re
from typing import NamedTuple
from urllib.parse import unquote, unquote_plus

# Shorter forms are not looked for: a two-character salt would mask every "00" in a log.
MIN_FORM_LENGTH = 6
# Characters no percent-encoder escapes (RFC 3986 section 2.3), matched as themselves only.
UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# A space may travel as `+` (form encoding), and a `+` may come back as a space from a form decoder.
SPACE_OR_PLUS = r"(?:\ |\+|%20|%2[bB])"
BASE64_TEXT = re.compile(r"[A-Za-z0-9+/]+={0,2}|[A-Za-z0-9_-]+={0,2}")
# A value is taken for a base64 key when it decodes to this many bytes (an Azure key is 64).
MIN_KEY_BYTES = 16
# Letters and digits are the same in every encoding: a run of them must appear wherever the secret does.
INVARIANT_RUN = re.compile(r"[A-Za-z0-9]+")


class Form(NamedTuple):
    """One way to find a secret: a regular expression, and a lowercase run of letters and digits that
    every match contains (a cheap test before the expression runs; empty when there is none)."""

    pattern: str
    anchor: str


def _form(pattern: str, plain: str) -> Form:
    return Form(pattern, max(INVARIANT_RUN.findall(plain), key=len, default="").lower())


def text_forms(secret: str) -> set[Form]:
    """The forms of a text secret: as given, percent-decoded (`+` kept, or read as a space), and each
    of those percent-encoded in any mix of upper- and lowercase hex; for a base64 key also its other
    alphabets and paddings, and the hex of the bytes it encodes."""
    given = secret.strip()
    canonical = {given, unquote(given), unquote_plus(given)}
    forms = {_form(_any_encoding(form), form) for form in canonical if len(form) >= MIN_FORM_LENGTH}
    if given != unquote(given) and len(given) >= MIN_FORM_LENGTH:
        forms.add(_form(re.escape(given), given))  # an escape of an unreserved character (`%41`) as written
    decoded = _base64_bytes(given)
    if decoded is not None:
        forms |= key_forms(decoded)
    return forms


def key_forms(key: bytes) -> set[Form]:
    """The forms of a binary key (IMGPROXY_KEY, an account key's bytes): hex in any case, and base64,
    standard or url-safe, padded or not, percent-encoded or not. The raw bytes themselves are not
    looked for: they are rarely printable, and a printable key (`secret`) is also an ordinary word."""
    forms = set()
    hex_form = key.hex()
    if len(hex_form) >= MIN_FORM_LENGTH:
        forms.add(_form(f"(?i:{hex_form})", hex_form))
    encoded = base64.b64encode(key).decode()
    body = encoded.rstrip("=")
    if len(body) >= MIN_FORM_LENGTH:
        padding = len(encoded) - len(body)
        pattern = "".join(map(_base64_char, body)) + (f"(?:=|%3[dD]){{0,{padding}}}" if padding else "")
        forms.add(_form(pattern, body))
    return forms


def _any_encoding(form: str) -> str:
    return "".join(map(_text_char, form))


def _text_char(char: str) -> str:
    if char in UNRESERVED:
        return re.escape(char)
    if char in " +":
        return SPACE_OR_PLUS
    return f"(?:{re.escape(char)}|{_percent(char)})"


def _base64_char(char: str) -> str:
    if char == "+":
        return r"(?:\+|-|%2[bB]|\ |%20)"
    if char == "/":
        return r"(?:/|_|%2[fF])"
    return char  # a letter or a digit: the same in every alphabet


def _percent(char: str) -> str:
    """`%XX` for each UTF-8 byte of `char`, each hex letter in either case."""
    return "".join("%" + "".join(f"[{d.upper()}{d}]" if d.isalpha() else d for d in f"{b:02x}")
                   for b in char.encode())


def _base64_bytes(text: str) -> bytes | None:
    """The bytes `text` encodes if it is a base64 key (either alphabet, padding optional), else None."""
    if not BASE64_TEXT.fullmatch(text):
        return None
    body = text.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        decoded = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if len(decoded) >= MIN_KEY_BYTES else None
