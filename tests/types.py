from __future__ import annotations

from typing import Any, Protocol

from starling.testclient import TestClient
from starling.types import ASGIApp


class TestClientFactory(Protocol):  # pragma: no cover (a protocol: its body never runs)
    def __call__(
        self,
        app: ASGIApp,
        base_url: str = "http://testserver",
        raise_server_exceptions: bool = True,
        root_path: str = "",
        cookies: Any = None,
        headers: dict[str, str] | None = None,
        follow_redirects: bool = True,
        client: tuple[str, int] = ("testclient", 50000),
    ) -> TestClient: ...


# Not a test class despite its name: keep pytest from collecting it (a protocol member would
# make every factory need the attribute).
setattr(TestClientFactory, "__test__", False)  # noqa: B010
