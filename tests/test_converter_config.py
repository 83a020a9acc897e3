"""Settings of the image converter: ConverterConfig.from_env."""

import dataclasses

import pytest

from previews.conversions.config import ConverterConfig
from proxy.settings.conversions import read_converter_config
from proxy.settings.errors import ConfigError


def test_defaults() -> None:
    config = read_converter_config({})
    assert (config.auto_webp, config.quality, config.video_timeout) == (False, 90, 30.0)
    assert config == ConverterConfig()


def test_the_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ConverterConfig().quality = 50  # frozen: refused at run time


@pytest.mark.parametrize(("env", "field", "value"), [
    ({"IMAGE_CONVERTER_AUTO_WEBP": "true"}, "auto_webp", True),
    ({"IMAGE_CONVERTER_AUTO_WEBP": "1"}, "auto_webp", True),
    ({"IMAGE_CONVERTER_AUTO_WEBP": "off"}, "auto_webp", False),
    ({"IMAGE_CONVERTER_AUTO_WEBP": ""}, "auto_webp", False),
    ({"IMAGE_CONVERTER_QUALITY": "1"}, "quality", 1),
    ({"IMAGE_CONVERTER_QUALITY": "100"}, "quality", 100),
    ({"IMAGE_CONVERTER_QUALITY": " 75 "}, "quality", 75),
    ({"IMAGE_CONVERTER_VIDEO_TIMEOUT": "5"}, "video_timeout", 5.0),
    ({"IMAGE_CONVERTER_VIDEO_TIMEOUT": "2.5"}, "video_timeout", 2.5),
])
def test_each_setting_is_read(env: dict[str, str], field: str, value: object) -> None:
    assert getattr(read_converter_config(env), field) == value


@pytest.mark.parametrize(("name", "text"), [
    ("IMAGE_CONVERTER_AUTO_WEBP", "maybe"),
    ("IMAGE_CONVERTER_QUALITY", "0"),
    ("IMAGE_CONVERTER_QUALITY", "101"),
    ("IMAGE_CONVERTER_QUALITY", "high"),
    ("IMAGE_CONVERTER_QUALITY", "-5"),
    ("IMAGE_CONVERTER_VIDEO_TIMEOUT", "0"),
    ("IMAGE_CONVERTER_VIDEO_TIMEOUT", "-1"),
    ("IMAGE_CONVERTER_VIDEO_TIMEOUT", "soon"),
    ("IMAGE_CONVERTER_VIDEO_TIMEOUT", "nan"),
    ("IMAGE_CONVERTER_VIDEO_TIMEOUT", "100000"),
])
def test_a_bad_value_is_a_one_line_config_error_naming_the_variable(name: str, text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        read_converter_config({name: text})
    message = str(caught.value)
    assert message.startswith(f"{name}=") and "\n" not in message


def test_describe_shows_every_setting() -> None:
    described = read_converter_config({"IMAGE_CONVERTER_AUTO_WEBP": "yes", "IMAGE_CONVERTER_QUALITY": "70",
                                          "IMAGE_CONVERTER_VIDEO_TIMEOUT": "12.5"}).describe()
    assert described == {"IMAGE_CONVERTER_AUTO_WEBP": "true", "IMAGE_CONVERTER_QUALITY": "70",
                         "IMAGE_CONVERTER_VIDEO_TIMEOUT": "12.5s"}
