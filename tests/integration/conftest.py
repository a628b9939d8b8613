"""FastAPI on starling, in this pytest process.

The switch acts before the app module imports FastAPI: the same call that the
STARLING_AS_STARLETTE .pth line makes at interpreter start (starling._switch.switch_on), made
here at collection time. From then on ``starlette`` is starling in this process; the rest of
the suite imports starling directly and is unaffected (nothing in it imports the real
Starlette, and tests/test_compat.py restores sys.modules around each of its tests).
"""

from starling import _switch

_switch.switch_on()
