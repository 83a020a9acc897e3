"""The catalogue of variable names (proxy/settings/environment/catalogue.py) against the code that reads them,
and the report of variables under our prefixes that nothing reads.

The catalogue must not drift: a name read anywhere in proxy/ and missing from it, or listed and read
nowhere, fails here, and so does a setting `preview-proxy config` does not show.
"""

import ast
import re
from pathlib import Path

import pytest

from proxy.config import Config
from proxy.settings.environment.catalogue import FOREIGN_NAMES, KNOWN_NAMES, OWNED_PREFIXES, SHOWN_UNDER
from proxy.settings.environment.imgproxy_names import IMGPROXY_DOCUMENTED, IMGPROXY_INSTEAD
from proxy.settings.environment.reading import Environment
from proxy.settings.environment.unknown_names import unknown_names
from proxy.settings.listen_address import read_listen_address
from tests.conftest import REPO

ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
# Upper-case constants in proxy/ that are not settings, each with what it is.
NOT_SETTINGS = {
    "SC_PAGE_SIZE": "os.sysconf's name",
    "SC_PHYS_PAGES": "os.sysconf's name",
    "SC_CLK_TCK": "os.sysconf's name",
    "F_SETPIPE_SZ": "fcntl's name",
    "PROMETHEUS_MULTIPROC_DIR": "prometheus_client's variable, set for the workers, never read as a setting",
}
# The catalogue's own modules list names (ours, imgproxy's, other programs'); they read none.
CATALOGUES = ("proxy/settings/environment/catalogue.py", "proxy/settings/environment/imgproxy_names.py")
# Settings read only in some configurations, and an environment that reaches each reader.
REACHING = [
    {},
    {"CORS_ALLOW_ORIGINS": "*"},
    {"IMGPROXY_ALLOW_ORIGIN": "*", "IMGPROXY_BIND": ":9000"},
    {"SERVER_PORT": "9000", "SERVER_HOST": "::1"},
]


def names_in_source() -> dict[str, str]:
    """Every whole string constant in proxy/ shaped like an environment name, with one file it is in."""
    found: dict[str, str] = {}
    for path in sorted((REPO / "proxy").rglob("*.py")):
        if str(path.relative_to(REPO)) in CATALOGUES:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.fullmatch(node.value):
                found.setdefault(node.value, str(path.relative_to(REPO)))
    return found


def names_looked_up(tmp_path: Path) -> set[str]:
    """What the readers ask for at start-up, over environments that reach the conditional ones."""
    looked_up: set[str] = set()
    for extra in REACHING:
        env = Environment({"DATA_PATH": str(tmp_path / "data"), **extra})
        read_listen_address(env)
        Config.from_env(env)
        looked_up |= env.looked_up
    return looked_up


def is_stem(name: str) -> bool:
    """A name the readers extend (`CACHE_PREVIEWS` + `_SIZE`)."""
    return any(known.startswith(f"{name}_") for known in KNOWN_NAMES)


def test_every_name_read_in_the_source_is_in_the_catalogue() -> None:
    found = names_in_source()
    assert {"STORAGE_SECRET_KEY", "IMGPROXY_KEY", "DATA_PATH"} <= found.keys()  # the scan sees the readers
    missing = {name: where for name, where in found.items()
               if name not in KNOWN_NAMES and name not in NOT_SETTINGS and not is_stem(name)}
    assert missing == {}, "add these to proxy/settings/environment/catalogue.py (or NOT_SETTINGS here)"


def test_every_name_looked_up_at_start_up_is_in_the_catalogue(tmp_path: Path) -> None:
    # The names built at run time (CACHE_<TIER>_SIZE) are seen here, not by the source scan.
    looked_up = names_looked_up(tmp_path)
    assert "CACHE_IMAGE_CONVERTER_EXPIRES" in looked_up and "CORS_MAX_AGE" in looked_up
    assert sorted(looked_up - KNOWN_NAMES) == []


def test_every_catalogued_name_is_read_somewhere(tmp_path: Path) -> None:
    read = names_in_source().keys() | names_looked_up(tmp_path)
    assert sorted(KNOWN_NAMES - read) == []


def test_every_setting_is_shown_by_config(tmp_path: Path) -> None:
    described = Config.from_env({"DATA_PATH": str(tmp_path / "data")}).describe()
    assert sorted(KNOWN_NAMES - described.keys() - SHOWN_UNDER.keys()) == []
    assert set(SHOWN_UNDER.values()) <= described.keys()


def test_every_catalogued_name_is_under_a_prefix_we_own_or_its_own() -> None:
    # A name outside every prefix is still known; this keeps the prefixes in step with the names.
    bare = {name for name in KNOWN_NAMES if not name.startswith(OWNED_PREFIXES)}
    assert bare == {"DATA_PATH", "SENDFILE", "ACCESS_LOG", "HOT_LANE"}


# --- the report --------------------------------------------------------------------------------


def report(**env: str) -> list[str]:
    return unknown_names(env)


def test_a_typo_names_the_setting_it_resembles() -> None:
    (line,) = report(CACHE_PREVIEW_SIZE="1g")
    assert line.startswith("CACHE_PREVIEW_SIZE ") and line.endswith("did you mean CACHE_PREVIEWS_SIZE?")


@pytest.mark.parametrize(("typo", "meant"), [("IMGPROXY_QUALTY", "IMGPROXY_QUALITY"),
                                             ("STORAGE_SECRETKEY", "STORAGE_SECRET_KEY"),
                                             ("CORS_ALLOW_ORIGIN", "CORS_ALLOW_ORIGINS"),
                                             ("UPLOAD_TOKEN", "UPLOAD_TOKENS"),
                                             ("SERVER_WORKER", "SERVER_WORKERS")])
def test_typos_under_each_kind_of_prefix(typo: str, meant: str) -> None:
    (line,) = report(**{typo: "x"})
    assert f"did you mean {meant}?" in line


def test_a_name_like_nothing_gets_no_guess() -> None:
    (line,) = report(STORAGE_BUCKET_WEBHOOK="x")
    assert "is not a preview-proxy setting" in line and "did you mean" not in line


def test_an_imgproxy_setting_we_do_not_read_is_called_unsupported_not_a_typo() -> None:
    (line,) = report(IMGPROXY_USE_ETAG="true")
    assert "is an imgproxy setting preview-proxy does not support" in line and "did you mean" not in line
    (hinted,) = report(IMGPROXY_CONCURRENCY="8")
    assert hinted.endswith("(preview-proxy has IMGPROXY_WORKERS)")


def test_imgproxy_settings_we_read_are_not_reported() -> None:
    supported = sorted(KNOWN_NAMES & IMGPROXY_DOCUMENTED)
    assert len(supported) > 10
    assert unknown_names(dict.fromkeys(supported, "1")) == []


def test_the_imgproxy_hints_name_settings_we_have() -> None:
    for name, instead in IMGPROXY_INSTEAD.items():
        assert name in IMGPROXY_DOCUMENTED and name not in KNOWN_NAMES
        assert instead.split("=")[0] in KNOWN_NAMES or instead.startswith("/")


def test_names_outside_our_prefixes_and_foreign_names_are_left_alone() -> None:
    assert report(HOME="/root", PATH="/bin", AWS_REGION="x", JUPYTER_DOWNLOAD_FILES_BEFORE_START="true",
                  **dict.fromkeys(FOREIGN_NAMES, "x")) == []


def test_kubernetes_service_links_are_left_alone_but_a_setting_named_like_one_is_not() -> None:
    links = {"STORAGE_SERVICE_HOST": "10.0.0.1", "STORAGE_SERVICE_PORT": "9000",
             "STORAGE_SERVICE_PORT_HTTP": "9000", "CACHE_PORT": "tcp://10.0.0.2:6379",
             "CACHE_PORT_6379_TCP": "tcp://10.0.0.2:6379", "CACHE_PORT_6379_TCP_ADDR": "10.0.0.2"}
    assert unknown_names(links) == []
    assert len(report(CACHE_PORT="6379")) == 1  # not a service link's value: a mistake of ours


def test_a_name_looked_up_is_known_even_before_the_catalogue_lists_it() -> None:
    assert len(report(LOG_SAMPLING="0.1")) == 1
    assert unknown_names({"LOG_SAMPLING": "0.1"}, looked_up={"LOG_SAMPLING"}) == []


def test_a_known_name_is_a_prefix_too() -> None:
    (line,) = report(ACCESS_LOG_FORMAT="json")
    assert line.startswith("ACCESS_LOG_FORMAT ")


def test_the_report_never_holds_a_value() -> None:
    secret = "value-that-must-not-be-printed-7731"
    lines = report(STORAGE_SECRET="" + secret, IMGPROXY_ABS_KEY=secret, CACHE_PREVIEW_SIZE=secret)
    assert len(lines) == 3 and not any(secret in line for line in lines)


def test_the_source_is_named_when_known() -> None:
    env = Environment({"CACHE_PREVIEW_SIZE": "1g"}, {"STORAGE_REGON": "eu"}, Path(".env"))
    lines = unknown_names(env, source=env.source)
    assert [line.split(" is ")[0] for line in lines] == ["CACHE_PREVIEW_SIZE (environment)", "STORAGE_REGON (env file)"]
