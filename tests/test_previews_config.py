"""Settings of the previews route: RenderConfig.from_env, PreviewsConfig.from_env and `preview-proxy config`.

Names and defaults are imgproxy's where it has the setting (https://docs.imgproxy.net/configuration/options),
with this project's defaults: 50 MP, no file-size limit, qualities jpeg 80, webp 79, avif 63.
"""

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from previews.config import RenderConfig
from previews.grammar.options import Gravity, GravityType, ProcessingOptions, ResizingType
from proxy.render.pool import RenderPool
from proxy.runtime.cores import usable_cores
from proxy.settings.errors import ConfigError
from proxy.settings.previews import PreviewsConfig
from proxy.settings.render import read_render_config
from proxy.settings.units import parse_duration, parse_size
from tests.support.render_gauges import RecordingGauges


def previews(**env: str) -> PreviewsConfig:
    return PreviewsConfig.from_env(env)


# --- defaults -----------------------------------------------------------------------------------


def test_previews_defaults() -> None:
    config = PreviewsConfig.from_env({})
    assert config.workers == usable_cores()  # one render thread per usable core, for the whole server
    assert config.queue_size == 256
    assert config.timeout == 10.0
    assert (config.auto_webp, config.auto_avif) == (False, False)
    assert config.signature.pairs == ()
    assert config.signature.size == 32
    assert config.cache_control == "public, max-age=31536000, immutable"  # one year


def test_render_defaults() -> None:
    config = read_render_config({})
    assert config.max_src_resolution == 50_000_000
    assert config.max_src_file_size == 0  # unlimited
    assert config.presets == {}
    assert config.defaults == ProcessingOptions()
    assert (config.defaults.auto_rotate, config.defaults.strip_metadata, config.defaults.strip_color_profile) == (
        True, True, True)


@pytest.mark.parametrize(("format_name", "quality"), [("jpeg", 80), ("webp", 79), ("avif", 63)])
def test_default_quality_per_format(format_name: str, quality: int) -> None:
    """`q:0` (or no `q`) means the format's default."""
    for config in (RenderConfig(), read_render_config({})):
        assert config.quality_for(format_name, 0) == quality
        assert config.quality_for(format_name, 55) == 55


def test_from_env_matches_the_dataclass_defaults() -> None:
    assert PreviewsConfig.from_env({}) == PreviewsConfig()
    assert read_render_config({}) == RenderConfig()


@pytest.mark.parametrize("processes", [1, 2, 3, 64])
@pytest.mark.parametrize("env", [{}, {"IMGPROXY_WORKERS": "5"}])
def test_every_process_has_a_render_thread_per_render_the_server_runs_at_once(processes: int,
                                                                               env: dict[str, str]) -> None:
    whole_server = PreviewsConfig.from_env(env)
    each = PreviewsConfig.from_env(env, processes=processes)
    # The processes take turns on that many cores (proxy.render.shared_bounds, made by the supervisor).
    assert each.workers == whole_server.workers == int(env.get("IMGPROXY_WORKERS", usable_cores()))


# --- each variable ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "attribute", "expected"),
    [
        ({"IMGPROXY_WORKERS": "3"}, "workers", 3),
        ({"IMGPROXY_WORKERS": "64"}, "workers", 64),
        ({"IMGPROXY_REQUESTS_QUEUE_SIZE": "10"}, "queue_size", 10),
        ({"IMGPROXY_TIMEOUT": "2.5"}, "timeout", 2.5),
        ({"IMGPROXY_TIMEOUT": "60"}, "timeout", 60.0),
        ({"IMGPROXY_AUTO_WEBP": "true"}, "auto_webp", True),
        ({"IMGPROXY_AUTO_WEBP": "1"}, "auto_webp", True),
        ({"IMGPROXY_AUTO_WEBP": "false"}, "auto_webp", False),
        ({"IMGPROXY_AUTO_AVIF": "true"}, "auto_avif", True),
        ({"PREVIEWS_CACHE_CONTROL": "private, max-age=60"}, "cache_control", "private, max-age=60"),
        ({"CACHE_PREVIEWS_MEMORY": "128m"}, "memory_bytes", parse_size("128m")),
        ({"CACHE_PREVIEWS_MEMORY": "1048576"}, "memory_bytes", 1048576),
        ({"CACHE_PREVIEWS_MEMORY": "0"}, "memory_bytes", 0),
        ({"CACHE_SOURCE_INFO_TTL": "30s"}, "source_info_ttl", 30.0),
        ({"CACHE_SOURCE_INFO_TTL": "1h30m"}, "source_info_ttl", parse_duration("1h30m")),
        ({"CACHE_SOURCE_INFO_TTL": "0"}, "source_info_ttl", 0.0),
    ],
)
def test_previews_variable(env: dict[str, str], attribute: str, expected: Any) -> None:
    assert getattr(PreviewsConfig.from_env(env), attribute) == expected


@pytest.mark.parametrize(
    ("env", "attribute", "expected"),
    [
        ({"IMGPROXY_MAX_SRC_RESOLUTION": "12.5"}, "max_src_resolution", 12_500_000),
        ({"IMGPROXY_MAX_SRC_RESOLUTION": "0.5"}, "max_src_resolution", 500_000),
        ({"IMGPROXY_MAX_SRC_RESOLUTION": "100"}, "max_src_resolution", 100_000_000),
        ({"IMGPROXY_MAX_SRC_FILE_SIZE": "10485760"}, "max_src_file_size", 10485760),
        ({"IMGPROXY_MAX_SRC_FILE_SIZE": "20m"}, "max_src_file_size", parse_size("20m")),
        ({"IMGPROXY_MAX_SRC_FILE_SIZE": "0"}, "max_src_file_size", 0),
        ({"IMGPROXY_QUALITY": "70"}, "quality", 70),
    ],
)
def test_render_variable(env: dict[str, str], attribute: str, expected: Any) -> None:
    assert getattr(read_render_config(env), attribute) == expected
    assert getattr(PreviewsConfig.from_env(env).render, attribute) == expected


def test_quality_sets_formats_without_their_own() -> None:
    config = read_render_config({"IMGPROXY_QUALITY": "70"})
    assert config.quality_for("jpeg", 0) == 70
    assert config.quality_for("webp", 0) == 79


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("jpeg=90,webp=60,avif=50", {"jpeg": 90, "webp": 60, "avif": 50}),
        ("webp=60, avif=50", {"webp": 60, "avif": 50}),
        ("avif=1", {"avif": 1}),
        ("webp=100", {"webp": 100}),
        # imgproxy reads format names as it reads extensions: `jpg` is JPEG.
        ("jpg=85", {"jpeg": 85}),
    ],
)
def test_format_quality(text: str, expected: dict[str, int]) -> None:
    config = read_render_config({"IMGPROXY_FORMAT_QUALITY": text})
    for format_name, quality in expected.items():
        assert config.quality_for(format_name, 0) == quality
        assert config.quality_for(format_name, 42) == 42


def test_presets_variable() -> None:
    config = read_render_config({"IMGPROXY_PRESETS": "default=q:60,thumb=rs:fill:100:100/g:sm,big=w:2000"})
    assert set(config.presets) == {"default", "thumb", "big"}
    assert config.presets["thumb"] == [("rs", ["fill", "100", "100"]), ("g", ["sm"])]
    assert config.defaults.quality == 60
    assert (config.defaults.resizing_type, config.defaults.gravity) == (ResizingType.FIT, Gravity(GravityType.CENTER))


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("IMGPROXY_AUTO_ROTATE", "auto_rotate"),
        ("IMGPROXY_STRIP_METADATA", "strip_metadata"),
        ("IMGPROXY_STRIP_COLOR_PROFILE", "strip_color_profile"),
    ],
)
def test_default_switches(name: str, field: str) -> None:
    assert getattr(read_render_config({name: "false"}).defaults, field) is False
    assert getattr(read_render_config({name: "true"}).defaults, field) is True


def test_signature_variables_reach_previews_config() -> None:
    config = previews(IMGPROXY_KEY="736563726574,6b6579", IMGPROXY_SALT="68656C6C6F,73616c74",
                      IMGPROXY_SIGNATURE_SIZE="8")
    assert config.signature.pairs == ((b"secret", b"hello"), (b"key", b"salt"))
    assert config.signature.size == 8


def test_queue_size_zero_means_unlimited() -> None:
    """imgproxy: "When set to 0, the requests queue is unlimited." A render on an idle pool must run."""
    config = previews(IMGPROXY_REQUESTS_QUEUE_SIZE="0", IMGPROXY_WORKERS="2")

    async def one_render() -> int:
        pool = RenderPool(config.workers, config.queue_size, RecordingGauges())
        try:
            return await pool.run(lambda: 42, time.monotonic() + 10)
        finally:
            pool.close()

    assert asyncio.run(one_render()) == 42


# --- bad values ---------------------------------------------------------------------------------

BAD_VALUES = [
    ("IMGPROXY_WORKERS", ["abc", "0", "-1", "2.5"]),
    ("IMGPROXY_REQUESTS_QUEUE_SIZE", ["abc", "-1", "1.5"]),
    ("IMGPROXY_TIMEOUT", ["abc", "0", "-1", "nan", "inf"]),
    ("IMGPROXY_MAX_SRC_RESOLUTION", ["abc", "0", "-1", "nan"]),
    ("IMGPROXY_MAX_SRC_FILE_SIZE", ["abc", "-1", "10x", "1.5"]),
    ("IMGPROXY_QUALITY", ["0", "101", "abc", "-5", "50.5"]),
    ("IMGPROXY_FORMAT_QUALITY", ["webp", "webp=0", "webp=101", "heic=50", "webp=abc", "=50", "webp=50,avif"]),
    ("IMGPROXY_PRESETS", ["thumb", "=w:1", "thumb=", "thumb=w:abc", "thumb=foo:1", "default=w:abc",
                          "a=pr:missing", "default=rs:bogus"]),
    ("IMGPROXY_AUTO_WEBP", ["maybe", "2"]),
    ("IMGPROXY_AUTO_AVIF", ["maybe"]),
    ("CACHE_PREVIEWS_MEMORY", ["lots", "-5", "0.5"]),
    ("CACHE_SOURCE_INFO_TTL", ["soon", "-1s", "1x"]),
    ("IMGPROXY_AUTO_ROTATE", ["maybe"]),
    ("IMGPROXY_STRIP_METADATA", ["x"]),
    ("IMGPROXY_STRIP_COLOR_PROFILE", ["2"]),
]
BAD = [(name, value) for name, values in BAD_VALUES for value in values]


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{name}={value}" for name, value in BAD])
def test_bad_value_is_one_line_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        PreviewsConfig.from_env({name: value})
    message = str(excinfo.value)
    assert "\n" not in message
    assert name in message
    assert "Traceback" not in message


def test_bad_render_value_is_refused_by_render_config_too() -> None:
    with pytest.raises(ConfigError, match="IMGPROXY_MAX_SRC_RESOLUTION"):
        read_render_config({"IMGPROXY_MAX_SRC_RESOLUTION": "lots"})


# --- `preview-proxy config` ---------------------------------------------------------------------

KEY_HEX = "5c2a9e0f7b13d4e6a8c1f09b3e57d2a4"
SALT_HEX = "e1b7c3d9a5f20468bd13ce57f9a2046c"


def run_config(cwd: Path, data_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "CACHE_", "AWS_", "IMGPROXY_"))}
    env.update(DATA_PATH=str(data_path), PYTHONUNBUFFERED="1", **extra)
    return subprocess.run([sys.executable, "-m", "proxy.runtime.cli", "config"], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=30, check=False)


def settings(stdout: str) -> dict[str, str]:
    pairs = (line.split("  # ", 1)[0].split(" = ", 1) for line in stdout.splitlines() if " = " in line)
    return {name: value for name, value in pairs}


def test_config_command_masks_key_and_salt(tmp_path: Path, data_path: Path) -> None:
    result = run_config(tmp_path, data_path, IMGPROXY_KEY=KEY_HEX, IMGPROXY_SALT=SALT_HEX,
                        IMGPROXY_WORKERS="3", IMGPROXY_MAX_SRC_RESOLUTION="12.5")
    assert result.returncode == 0, result.stderr
    output = (result.stdout + result.stderr).lower()
    for secret in (KEY_HEX, SALT_HEX):
        assert secret not in output
        assert secret[:8] not in output
    shown = settings(result.stdout)
    assert shown["IMGPROXY_KEY"] not in ("", "(unsigned URLs)")  # it shows that a key is set
    assert shown["IMGPROXY_WORKERS"] == "3"
    assert shown["IMGPROXY_MAX_SRC_RESOLUTION"].startswith("12.5")


def test_config_command_without_keys_says_unsigned(tmp_path: Path, data_path: Path) -> None:
    result = run_config(tmp_path, data_path)
    assert result.returncode == 0, result.stderr
    shown = settings(result.stdout)
    assert shown["IMGPROXY_KEY"] == "(unsigned URLs)"
    assert shown["IMGPROXY_REQUESTS_QUEUE_SIZE"] == "256"
    assert shown["IMGPROXY_MAX_SRC_FILE_SIZE"] == "unlimited"


def test_config_command_bad_key_is_one_line_without_the_key(tmp_path: Path, data_path: Path) -> None:
    odd = KEY_HEX + "f"
    result = run_config(tmp_path, data_path, IMGPROXY_KEY=odd, IMGPROXY_SALT=SALT_HEX)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "IMGPROXY_KEY" in lines[0]
    assert KEY_HEX not in result.stderr + result.stdout and SALT_HEX not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
