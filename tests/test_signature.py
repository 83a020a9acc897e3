"""imgproxy-compatible URL signatures (proxy.http.access.signature): https://docs.imgproxy.net/usage/signing_url.

signature = base64url_nopad(HMAC_SHA256(key=unhex(KEY), msg=unhex(SALT) + path)[:SIGNATURE_SIZE]), where
path is everything after the signature segment, with its leading slash.
"""

import hmac

import pytest

from previews.grammar.url import parse_preview_url
from proxy.errors import Forbidden
from proxy.http.access import signature as signature_module
from proxy.http.access.signature import PLACEHOLDERS, SignatureConfig, sign, verify
from proxy.settings.errors import ConfigError

VECTOR_KEY = "736563726574"  # "secret"
VECTOR_SALT = "68656C6C6F"  # "hello"
VECTOR_PATH = "/rs:fill:300:400:0/g:sm/aHR0cDovL2V4YW1w/bGUuY29tL2ltYWdl/cy9jdXJpb3NpdHku/anBn.png"
VECTOR_SIGNATURE = "oKfUtW34Dvo2BGQehJFR4Nr0_rIjOtdtzJ3QFsUcXH8"
VECTOR_SIGNATURE_8 = "oKfUtW34Dvo"

PAIRS = [("736563726574", "68656C6C6F"), ("6b6579322d6f6e65", "73616c7432"), ("00ff10ee", "abcdef0123")]


def config(pairs: list[tuple[str, str]] = PAIRS[:1], size: str | None = None) -> SignatureConfig:
    env = {"IMGPROXY_KEY": ",".join(k for k, _ in pairs), "IMGPROXY_SALT": ",".join(s for _, s in pairs)}
    if size is not None:
        env["IMGPROXY_SIGNATURE_SIZE"] = size
    return SignatureConfig.from_env(env)


def forbidden(settings: SignatureConfig, signature: str, path: str) -> Forbidden:
    with pytest.raises(Forbidden) as excinfo:
        verify(settings, signature, path)
    error = excinfo.value
    assert error.status == 403
    assert error.reason and "\n" not in error.reason
    return error


# --- the test vector ----------------------------------------------------------------------------


def test_design_test_vector() -> None:
    key, salt = bytes.fromhex(VECTOR_KEY), bytes.fromhex(VECTOR_SALT)
    assert sign(key, salt, VECTOR_PATH) == VECTOR_SIGNATURE
    assert sign(key, salt, VECTOR_PATH, 8) == VECTOR_SIGNATURE_8


def test_design_test_vector_through_config_and_verify() -> None:
    verify(config(), VECTOR_SIGNATURE, VECTOR_PATH)
    forbidden(config(), VECTOR_SIGNATURE_8, VECTOR_PATH)  # the short form is not the configured size


def test_signature_size_8() -> None:
    settings = config(size="8")
    assert settings.size == 8
    verify(settings, VECTOR_SIGNATURE_8, VECTOR_PATH)
    forbidden(settings, VECTOR_SIGNATURE, VECTOR_PATH)


def test_vector_through_the_url_grammar() -> None:
    url = parse_preview_url(f"/{VECTOR_SIGNATURE}{VECTOR_PATH}")
    assert url.signed_path == VECTOR_PATH
    verify(config(), url.signature, url.signed_path)


def test_lowercase_hex_is_the_same_key() -> None:
    verify(config([(VECTOR_KEY.lower(), VECTOR_SALT.lower())]), VECTOR_SIGNATURE, VECTOR_PATH)


# --- several pairs ------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(PAIRS)))
def test_each_configured_pair_is_accepted(index: int) -> None:
    settings = config(PAIRS)
    assert len(settings.pairs) == len(PAIRS)
    key, salt = (bytes.fromhex(part) for part in PAIRS[index])
    path = f"/rs:fit:{100 + index}:0/plain/bucket/photo{index}.jpg"
    verify(settings, sign(key, salt, path), path)


def test_a_pair_not_configured_is_refused() -> None:
    settings = config(PAIRS[:2])
    key, salt = (bytes.fromhex(part) for part in PAIRS[2])
    forbidden(settings, sign(key, salt, "/plain/b/k"), "/plain/b/k")


def test_key_of_one_pair_with_salt_of_another_is_refused() -> None:
    settings = config(PAIRS[:2])
    mixed = sign(bytes.fromhex(PAIRS[0][0]), bytes.fromhex(PAIRS[1][1]), "/plain/b/k")
    forbidden(settings, mixed, "/plain/b/k")


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("placeholder", [*PLACEHOLDERS, ""])
def test_placeholder_or_missing_signature_is_forbidden_when_keys_are_set(placeholder: str) -> None:
    forbidden(config(), placeholder, VECTOR_PATH)


@pytest.mark.parametrize(
    ("signature", "path"),
    [
        (VECTOR_SIGNATURE[:-1] + "Y", VECTOR_PATH),  # one character off
        (VECTOR_SIGNATURE + "A", VECTOR_PATH),  # too long
        (VECTOR_SIGNATURE[:20], VECTOR_PATH),  # too short
        ("not-a-signature", VECTOR_PATH),
        (VECTOR_SIGNATURE, VECTOR_PATH.replace("300", "301")),  # the path was changed
        (VECTOR_SIGNATURE, VECTOR_PATH.removeprefix("/")),  # the leading slash is signed
        (VECTOR_SIGNATURE, VECTOR_PATH + "?v=1"),
        (VECTOR_SIGNATURE.lower(), VECTOR_PATH),
        ("oKfUtW34Dvo2BGQehJFR4Nr0_rIjOtdtzJ3QFsUcXH8=", VECTOR_PATH),  # padded
    ],
)
def test_bad_signature_is_forbidden(signature: str, path: str) -> None:
    forbidden(config(), signature, path)


def test_forbidden_reason_does_not_leak_the_expected_signature() -> None:
    error = forbidden(config(), "wrong", VECTOR_PATH)
    assert VECTOR_SIGNATURE not in error.reason and VECTOR_SIGNATURE[:8] not in error.reason


# --- no key -------------------------------------------------------------------------------------


@pytest.mark.parametrize("signature", [*PLACEHOLDERS, "anything", "", VECTOR_SIGNATURE])
def test_without_keys_anything_passes(signature: str) -> None:
    settings = SignatureConfig.from_env({})
    assert settings.pairs == ()
    verify(settings, signature, VECTOR_PATH)


def test_placeholders_cover_imgproxy_and_supervisely() -> None:
    assert {"q", "_", "insecure", "unsafe"} <= set(PLACEHOLDERS)


# --- constant time ------------------------------------------------------------------------------


class CompareRecorder:
    """Stands in for hmac.compare_digest: records each call and answers like the real one."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, bytes]] = []
        self.real = hmac.compare_digest

    def __call__(self, given: bytes, expected: bytes) -> bool:
        self.calls.append((bytes(given), bytes(expected)))
        return self.real(given, expected)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> CompareRecorder:
    recorder = CompareRecorder()
    monkeypatch.setattr(signature_module.hmac, "compare_digest", recorder)
    return recorder


@pytest.mark.parametrize("matching", [0, 1, 2, None], ids=["first", "middle", "last", "none"])
def test_every_pair_is_compared_with_compare_digest(recorder: CompareRecorder, matching: int | None) -> None:
    """Whichever pair matches (the first, or none), every pair goes through hmac.compare_digest."""
    settings = config(PAIRS)
    path = "/rs:fill:10:10/plain/b/k"
    if matching is None:
        forbidden(settings, "x" * len(VECTOR_SIGNATURE), path)
    else:
        key, salt = (bytes.fromhex(part) for part in PAIRS[matching])
        verify(settings, sign(key, salt, path), path)
    assert len(recorder.calls) == len(PAIRS)
    expected = [sign(bytes.fromhex(k), bytes.fromhex(s), path).encode() for k, s in PAIRS]
    assert sorted(call[1] for call in recorder.calls) == sorted(expected)


def test_no_plain_equality_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    """If compare_digest says "no", verify refuses even an exactly right signature."""
    monkeypatch.setattr(signature_module.hmac, "compare_digest", lambda given, expected: False)
    forbidden(config(), VECTOR_SIGNATURE, VECTOR_PATH)


# --- configuration errors -----------------------------------------------------------------------

SECRET_HEX = "deadbeefcafe1234"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"IMGPROXY_KEY": SECRET_HEX + "f", "IMGPROXY_SALT": "00"}, "IMGPROXY_KEY"),  # odd length
        ({"IMGPROXY_KEY": SECRET_HEX, "IMGPROXY_SALT": "0g"}, "IMGPROXY_SALT"),  # not hex
        ({"IMGPROXY_KEY": SECRET_HEX + ",zz", "IMGPROXY_SALT": "00,00"}, "IMGPROXY_KEY"),
        ({"IMGPROXY_KEY": SECRET_HEX + ",", "IMGPROXY_SALT": "00,11"}, "IMGPROXY_KEY"),  # an empty entry
        ({"IMGPROXY_KEY": SECRET_HEX}, "IMGPROXY_SALT"),  # a key without a salt
        ({"IMGPROXY_SALT": SECRET_HEX}, "IMGPROXY_KEY"),
        ({"IMGPROXY_KEY": SECRET_HEX + "," + SECRET_HEX, "IMGPROXY_SALT": "00"}, "IMGPROXY_SALT"),
        ({"IMGPROXY_KEY": SECRET_HEX, "IMGPROXY_SALT": "00,11"}, "IMGPROXY_KEY"),
        ({"IMGPROXY_KEY": SECRET_HEX, "IMGPROXY_SALT": "00", "IMGPROXY_SIGNATURE_SIZE": "0"},
         "IMGPROXY_SIGNATURE_SIZE"),
        ({"IMGPROXY_KEY": SECRET_HEX, "IMGPROXY_SALT": "00", "IMGPROXY_SIGNATURE_SIZE": "33"},
         "IMGPROXY_SIGNATURE_SIZE"),
        ({"IMGPROXY_SIGNATURE_SIZE": "eight"}, "IMGPROXY_SIGNATURE_SIZE"),
        ({"IMGPROXY_SIGNATURE_SIZE": "-8"}, "IMGPROXY_SIGNATURE_SIZE"),
        ({"IMGPROXY_SIGNATURE_SIZE": "8.5"}, "IMGPROXY_SIGNATURE_SIZE"),
    ],
)
def test_bad_signature_settings(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        SignatureConfig.from_env(env)
    message = str(excinfo.value)
    assert "\n" not in message
    assert variable in message
    assert SECRET_HEX not in message and SECRET_HEX.upper() not in message


@pytest.mark.parametrize("size", ["1", "8", "32"])
def test_signature_sizes_in_range(size: str) -> None:
    settings = config(size=size)
    assert settings.size == int(size)
    key, salt = bytes.fromhex(VECTOR_KEY), bytes.fromhex(VECTOR_SALT)
    verify(settings, sign(key, salt, VECTOR_PATH, int(size)), VECTOR_PATH)


def test_default_signature_size_is_32() -> None:
    assert config().size == 32 and SignatureConfig.from_env({}).size == 32


def test_masked_never_shows_keys() -> None:
    shown = " ".join(config(PAIRS).masked().values())
    for key, salt in PAIRS:
        assert key.lower() not in shown.lower() and salt.lower() not in shown.lower()
    assert "3" in shown
