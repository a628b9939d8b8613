"""The ``STARLING_AS_STARLETTE`` switch: run unchanged Starlette and FastAPI code on starling.

``_starling_as_starlette.pth`` (installed into site-packages beside the package) runs one line at
every interpreter start. While the variable is unset, ``0`` or empty, that line is a dictionary
lookup on ``os.environ`` and nothing else: this module is not even imported. Otherwise the line
calls :func:`switch_on_at_startup`, which aliases ``starlette`` to starling before any user code
runs, in this process and in every subprocess that inherits the environment.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from starling import compat

ENV_VAR = "STARLING_AS_STARLETTE"

_ON = frozenset({"1", "true", "yes", "on"})
_OFF = frozenset({"", "0", "false", "no", "off"})


class SwitchError(RuntimeError):
    """The switch is set but cannot act; the message says why and what to do."""


def is_on(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` asks for starling; a value that is neither on nor off is an error."""
    value = environ.get(ENV_VAR, "").strip().lower()
    if value in _OFF:
        return False
    if value in _ON:
        return True
    raise SwitchError(
        f"{ENV_VAR}={environ[ENV_VAR]!r} is not understood. Set it to 1 to run starlette imports "
        f"on starling, or to 0 (or unset it) to leave Starlette alone."
    )


def switch_on() -> None:
    """Alias ``starlette`` to starling now, refusing if the real Starlette is already loaded."""
    foreign = compat._foreign_starlette_modules()
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise SwitchError(
            f"{ENV_VAR}=1 could not switch this process to starling: the real Starlette was "
            f"imported first ({shown} already in sys.modules), and mixing the two would break "
            f"the app. Something imported it before starling's .pth file ran: another .pth file "
            f"in site-packages (search them for 'starlette'), or code run before site (python "
            f"-S). Remove that import, or unset {ENV_VAR} and call "
            f"starling.compat.alias_starlette() first thing in your entry point."
        )
    compat.alias_starlette()


def switch_on_at_startup() -> None:  # pragma: no cover - only in a starting interpreter
    """What the .pth line calls: on error, say why on stderr and stop the interpreter.

    site.py would print a raised exception and then go on starting, on the real Starlette;
    the user asked for starling, so a plain message and exit status 1 is the honest outcome.
    (tests/test_switch.py runs it in real interpreters, where coverage does not reach.)
    """
    try:
        if is_on(os.environ):
            switch_on()
    except SwitchError as error:
        sys.stderr.write(f"starling: {error}\n")
        sys.stderr.flush()
        os._exit(1)
