"""Configuration parsed once from the environment: cache tiers, storage, the root config and .env reading."""

from pathlib import Path

import pytest

from proxy.config import Config, read_environment
from proxy.settings.errors import ConfigError
from proxy.settings.tiers import read_cache_config
from proxy.settings.units import DURATION_FORMS, SIZE_FORMS, parse_duration, parse_size
from proxy.storage.config import StorageConfig

DATA = Path("/srv/data")
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYzEXAMPLEKEY"
ACCESS = "AKIAIOSFODNN7EXAMPLE"


def one_line_error(excinfo: pytest.ExceptionInfo[ConfigError], variable: str, forms: str) -> str:
    """Check the error is one line naming `variable` and the accepted `forms`; return it."""
    message = str(excinfo.value)
    assert "\n" not in message
    assert variable in message
    assert forms in message
    return message


def storage(**env: str) -> StorageConfig:
    return StorageConfig.from_env(env, DATA)


# --- cache tiers -------------------------------------------------------------------------------


def test_cache_defaults() -> None:
    config = read_cache_config({}, DATA)
    expected = {
        "previews": ("1g", "12h"),
        "storage": ("10g", "7d"),
        "image-converter": ("10g", "7d"),
    }
    seen = {t.name: (t.path, t.size_limit, t.idle_seconds) for t in config.tiers()}
    assert seen == {
        name: (DATA / "cache" / name, parse_size(size), parse_duration(idle)) for name, (size, idle) in expected.items()
    }


def test_cache_path_overrides_data_path() -> None:
    config = read_cache_config({"CACHE_PATH": "/fast/disk"}, DATA)
    assert [t.path for t in config.tiers()] == [Path("/fast/disk") / t.name for t in config.tiers()]


def test_cache_sizes_and_expiry_read_per_tier() -> None:
    env = {"CACHE_STORAGE_SIZE": "512m", "CACHE_PREVIEWS_EXPIRES": "1h30m", "CACHE_IMAGE_CONVERTER_SIZE": "2g"}
    config = read_cache_config(env, DATA)
    assert config.storage.size_limit == parse_size("512m")
    assert config.previews.idle_seconds == parse_duration("1h30m")
    assert config.image_converter.size_limit == parse_size("2g")
    # Untouched settings keep their defaults.
    assert config.previews.size_limit == read_cache_config({}, DATA).previews.size_limit


@pytest.mark.parametrize("value", ["lots", "-1g", "1.5", "0"])
def test_bad_cache_size_names_variable(value: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        read_cache_config({"CACHE_STORAGE_SIZE": value}, DATA)
    assert value in one_line_error(excinfo, "CACHE_STORAGE_SIZE", SIZE_FORMS)


@pytest.mark.parametrize("value", ["soon", "12 hours", "0s"])
def test_bad_cache_expires_names_variable(value: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        read_cache_config({"CACHE_PREVIEWS_EXPIRES": value}, DATA)
    one_line_error(excinfo, "CACHE_PREVIEWS_EXPIRES", DURATION_FORMS)


# --- storage -----------------------------------------------------------------------------------


def test_storage_defaults() -> None:
    config = storage()
    assert (config.provider, config.root, config.endpoint) == ("http", DATA / "storage", None)
    assert config.region == "us-east-1"


def test_storage_region_read() -> None:
    assert storage(STORAGE_REGION="eu-central-1").region == "eu-central-1"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"STORAGE_ENDPOINT": "http://minio:9000"}, "http://minio:9000"),
        ({"STORAGE_ENDPOINT": "https://s3.example.com/"}, "https://s3.example.com"),
        ({"STORAGE_ENDPOINT": "minio:9000"}, "https://minio:9000"),
        ({"STORAGE_ENDPOINT": "minio:9000", "STORAGE_SECURE": "false"}, "http://minio:9000"),
        ({"STORAGE_ENDPOINT": "minio", "STORAGE_PORT": "9000"}, "https://minio:9000"),
        ({"STORAGE_ENDPOINT": "http://minio:80", "STORAGE_PORT": "9000"}, "http://minio:9000"),
        ({"STORAGE_ENDPOINT": "http://minio", "STORAGE_SECURE": "true"}, "http://minio"),
        ({"STORAGE_ENDPOINT": "[::1]", "STORAGE_PORT": "9000", "STORAGE_SECURE": "0"}, "http://[::1]:9000"),
    ],
)
def test_endpoint_normalised(env: dict[str, str], expected: str) -> None:
    assert storage(**env).endpoint == expected


@pytest.mark.parametrize("port", ["abc", "0", "65536", "-1", "90 00"])
def test_bad_storage_port(port: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        storage(STORAGE_ENDPOINT="minio", STORAGE_PORT=port)
    one_line_error(excinfo, "STORAGE_PORT", "1 to 65535")


def test_non_ascii_digit_port_is_config_error() -> None:
    with pytest.raises(ConfigError):
        storage(STORAGE_ENDPOINT="minio", STORAGE_PORT="²")


def test_bad_storage_provider() -> None:
    with pytest.raises(ConfigError) as excinfo:
        storage(STORAGE_PROVIDER="dropbox")
    assert "dropbox" in one_line_error(excinfo, "STORAGE_PROVIDER", "http, minio")


def test_minio_without_keys_or_role() -> None:
    with pytest.raises(ConfigError) as excinfo:
        storage(STORAGE_PROVIDER="minio", STORAGE_ENDPOINT="minio:9000")
    one_line_error(excinfo, "STORAGE_ACCESS_KEY", "STORAGE_IAM_ROLE")


def test_minio_with_iam_role_only() -> None:
    config = storage(STORAGE_PROVIDER="MinIO", STORAGE_IAM_ROLE="reader")
    assert (config.provider, config.iam_role, config.access_key) == ("minio", "reader", None)


def test_access_key_without_secret() -> None:
    with pytest.raises(ConfigError) as excinfo:
        storage(STORAGE_PROVIDER="minio", STORAGE_ACCESS_KEY=ACCESS)
    one_line_error(excinfo, "STORAGE_SECRET_KEY", "required")


def test_secret_without_access_key() -> None:
    with pytest.raises(ConfigError) as excinfo:
        storage(STORAGE_PROVIDER="minio", STORAGE_SECRET_KEY=SECRET)
    message = one_line_error(excinfo, "STORAGE_ACCESS_KEY", "required")
    assert SECRET not in message


@pytest.mark.parametrize("value", ["maybe", "2", "nope"])
def test_bad_storage_secure(value: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        storage(STORAGE_ENDPOINT="minio:9000", STORAGE_SECURE=value)
    one_line_error(excinfo, "STORAGE_SECURE", "true or false")


# --- root config -------------------------------------------------------------------------------


def test_data_path_defaults_to_dot_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = Config.from_env({})
    assert config.data_path == Path.cwd() / "data"
    assert config.storage.root == config.data_path / "storage"
    assert config.cache.storage.path == config.data_path / "cache" / "storage"


def test_root_config_composes_parts() -> None:
    config = Config.from_env({"DATA_PATH": "/srv/x", "CACHE_PREVIEWS_SIZE": "2g"}, port=9100)
    assert config.server.port == 9100
    assert config.cache.previews.size_limit == parse_size("2g")
    assert config.storage.root == Path("/srv/x/storage")


def test_root_config_error_propagates() -> None:
    with pytest.raises(ConfigError, match="CACHE_STORAGE_EXPIRES"):
        Config.from_env({"DATA_PATH": "/srv/x", "CACHE_STORAGE_EXPIRES": "forever"})


def test_describe_masks_keys() -> None:
    env = {
        "DATA_PATH": "/srv/x",
        "STORAGE_PROVIDER": "minio",
        "STORAGE_ENDPOINT": "minio:9000",
        "STORAGE_ACCESS_KEY": ACCESS,
        "STORAGE_SECRET_KEY": SECRET,
    }
    described = Config.from_env(env).describe()
    everything = "\n".join(f"{name}={value}" for name, value in described.items())
    assert SECRET not in everything
    assert ACCESS not in everything
    # Not even a recognisable piece of the secret leaks.
    assert SECRET[:6] not in everything and SECRET[-6:] not in everything
    assert described["STORAGE_SECRET_KEY"] == described["STORAGE_ACCESS_KEY"] != "(unset)"
    # The rest is shown as is.
    assert described["STORAGE_ENDPOINT"] == "https://minio:9000"


def test_describe_mask_hides_length() -> None:
    base = {"STORAGE_PROVIDER": "minio", "STORAGE_ACCESS_KEY": ACCESS}
    short = Config.from_env({**base, "STORAGE_SECRET_KEY": "s"}).describe()
    long = Config.from_env({**base, "STORAGE_SECRET_KEY": SECRET * 3}).describe()
    assert short["STORAGE_SECRET_KEY"] == long["STORAGE_SECRET_KEY"]


# --- .env --------------------------------------------------------------------------------------


def test_env_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CACHE_STORAGE_SIZE", raising=False)
    env_file = tmp_path / "custom.env"
    env_file.write_text('CACHE_STORAGE_SIZE=3g\nexport STORAGE_REGION="eu-west-1"\n')
    env = read_environment(env_file)
    assert (env["CACHE_STORAGE_SIZE"], env["STORAGE_REGION"]) == ("3g", "eu-west-1")


def test_real_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("CACHE_STORAGE_SIZE=3g\nSTORAGE_REGION=from-file\n")
    monkeypatch.setenv("STORAGE_REGION", "from-process")
    monkeypatch.delenv("CACHE_STORAGE_SIZE", raising=False)
    env = read_environment(env_file)
    assert env["STORAGE_REGION"] == "from-process"
    assert env["CACHE_STORAGE_SIZE"] == "3g"


def test_dot_env_in_cwd_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CACHE_PREVIEWS_EXPIRES", raising=False)
    (tmp_path / ".env").write_text("CACHE_PREVIEWS_EXPIRES=30m\n")
    assert read_environment(None)["CACHE_PREVIEWS_EXPIRES"] == "30m"


def test_no_dot_env_gives_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PP_TEST_MARKER", "present")
    assert read_environment(None)["PP_TEST_MARKER"] == "present"


@pytest.mark.parametrize("kind", ["absent", "folder"])
def test_named_env_file_that_is_not_a_file_is_an_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "production.env"
    if kind == "folder":
        path.mkdir()
    with pytest.raises(ConfigError) as excinfo:
        read_environment(path)
    message = str(excinfo.value)
    assert "\n" not in message and "--env-file" in message and str(path) in message


@pytest.mark.parametrize("name", ["DATA_PATH", "CACHE_PATH"])
def test_a_file_where_a_folder_belongs_is_named(tmp_path: Path, name: str) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    env = {"DATA_PATH": str(tmp_path / "data"), name: str(a_file)}
    with pytest.raises(ConfigError) as excinfo:
        Config.from_env(env)
    assert str(excinfo.value).startswith(f"{name}=") and "not a folder" in str(excinfo.value)
