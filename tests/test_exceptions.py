"""HTTPException and WebSocketException: defaults, str() and repr() as in Starlette."""

from __future__ import annotations

import http

import pytest

from starling.exceptions import HTTPException, StarletteDeprecationWarning, WebSocketException


@pytest.mark.parametrize(
    ("status_code", "phrase"),
    [
        (100, "Continue"),
        (200, "OK"),
        (404, "Not Found"),
        (418, "I'm a Teapot"),
        (500, "Internal Server Error"),
    ],
)
def test_detail_defaults_to_the_status_phrase(status_code: int, phrase: str) -> None:
    exc = HTTPException(status_code)
    assert exc.status_code == status_code
    assert exc.detail == phrase
    assert exc.headers is None
    assert str(exc) == f"{status_code}: {phrase}"


@pytest.mark.parametrize("status_code", [0, -1, 299, 599, 999])
def test_non_standard_code_has_empty_detail(status_code: int) -> None:
    exc = HTTPException(status_code)
    assert exc.detail == ""
    assert str(exc) == f"{status_code}: "
    assert repr(exc) == f"HTTPException(status_code={status_code}, detail='')"


def test_explicit_detail_and_headers() -> None:
    exc = HTTPException(401, "Log in first", headers={"WWW-Authenticate": "Basic"})
    assert exc.detail == "Log in first"
    assert exc.headers == {"WWW-Authenticate": "Basic"}
    assert str(exc) == "401: Log in first"
    assert repr(exc) == "HTTPException(status_code=401, detail='Log in first')"


def test_every_standard_code_uses_the_stdlib_phrase() -> None:
    for code in http.HTTPStatus:
        assert HTTPException(code.value).detail == code.phrase


def test_args_are_the_positional_arguments() -> None:
    # Exception.__new__ keeps them, so pickling and logging see what the caller passed.
    assert HTTPException(404).args == (404,)
    assert HTTPException(404, None, {"X": "1"}).args == (404, None, {"X": "1"})


def test_keyword_arguments() -> None:
    exc = HTTPException(status_code=403, detail="d", headers={"a": "b"})
    assert (exc.status_code, exc.detail, exc.headers) == (403, "d", {"a": "b"})


def test_empty_detail_is_kept() -> None:
    # Only None means "use the phrase"; an empty string is a deliberate empty detail.
    assert HTTPException(404, "").detail == ""


def test_repr_quotes_detail_and_names_subclass() -> None:
    class TeapotError(HTTPException):
        pass

    assert repr(HTTPException(418)) == 'HTTPException(status_code=418, detail="I\'m a Teapot")'
    assert repr(TeapotError(400)) == "TeapotError(status_code=400, detail='Bad Request')"


def test_http_exception_is_raisable() -> None:
    with pytest.raises(HTTPException, match="^404: Not Found$"):
        raise HTTPException(404)


def test_websocket_exception() -> None:
    exc = WebSocketException(1008, "policy")
    assert (exc.code, exc.reason) == (1008, "policy")
    assert str(exc) == "1008: policy"
    assert repr(exc) == "WebSocketException(code=1008, reason='policy')"


@pytest.mark.parametrize("reason", [None, ""])
def test_websocket_exception_reason_defaults_to_empty(reason: str | None) -> None:
    exc = WebSocketException(1000, reason)
    assert exc.reason == ""
    assert str(exc) == "1000: "
    assert repr(exc) == "WebSocketException(code=1000, reason='')"


def test_websocket_exception_subclass_repr() -> None:
    class Closed(WebSocketException):
        pass

    assert repr(Closed(4000, "x")) == "Closed(code=4000, reason='x')"


def test_class_hierarchy() -> None:
    assert issubclass(HTTPException, Exception)
    assert issubclass(WebSocketException, Exception)
    assert not issubclass(WebSocketException, HTTPException)
    assert issubclass(StarletteDeprecationWarning, UserWarning)
