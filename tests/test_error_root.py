"""One root for every error a client sees, each error class in an errors.py, and a status on each.

The middleware renders previews.errors.PublicError and nothing else of ours, so an error class that
escaped the root would reach clients as a bare 500; one defined beside its raiser is hard to find
when reading what a package can answer.
"""

import importlib
import pkgutil

import pytest

from previews.errors import PublicError

PACKAGES = ("proxy", "previews", "cache")


def every_public_error() -> list[type[PublicError]]:
    """PublicError and its subclasses, after importing every module of the packages."""
    for package in PACKAGES:
        root = importlib.import_module(package)
        for module in pkgutil.walk_packages(root.__path__, f"{package}."):
            importlib.import_module(module.name)
    found: list[type[PublicError]] = []
    waiting: list[type[PublicError]] = [PublicError]
    while waiting:
        error = waiting.pop()
        found.append(error)
        waiting.extend(error.__subclasses__())
    return found


def every_exception_class() -> list[type[BaseException]]:
    """Every exception class the packages define (public ones and internal ones such as ConfigError)."""
    every_public_error()  # imports every module
    found: list[type[BaseException]] = []
    waiting: list[type[BaseException]] = [BaseException]
    while waiting:
        error = waiting.pop()
        if error.__module__.split(".")[0] in PACKAGES:
            found.append(error)
        waiting.extend(error.__subclasses__())
    return found


def test_every_error_class_lives_in_an_errors_module() -> None:
    outside = sorted(f"{error.__module__}.{error.__qualname__}" for error in every_exception_class()
                     if error.__module__.split(".")[-1] != "errors")
    assert outside == []
    # The walk finds the internal errors too, so an empty list above means something.
    assert {"ConfigError", "FillFailed", "LockTimeout", "LinkFieldError"} <= {
        error.__name__ for error in every_exception_class()}


def test_every_error_a_client_sees_lives_in_an_errors_module() -> None:
    outside = sorted(f"{error.__module__}.{error.__qualname__}" for error in every_public_error()
                     if error.__module__.split(".")[-1] != "errors")
    assert outside == []


@pytest.mark.parametrize("error", every_public_error(), ids=lambda error: error.__qualname__)
def test_every_error_carries_a_status_and_a_one_line_reason(error: type[PublicError]) -> None:
    assert 400 <= error.status < 600
    assert error.default_reason and "\n" not in error.default_reason
