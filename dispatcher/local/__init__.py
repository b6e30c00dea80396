"""The local stack: the real dispatcher on this machine (control plane, Argo, Pub/Sub emulator).

Product code (`dispatcher local ...`) and the tests share these modules, so there is one way to
start each server and to apply the shipped overlay.
"""

# shim: until the server code moves here from tests/ (at merge), make the checkout's tests
# package importable from the installed `dispatcher` script and from the stack's daemons.
import sys as _sys
from pathlib import Path as _Path

_REPO = str(_Path(__file__).resolve().parents[2])
if _REPO not in _sys.path:
    _sys.path.append(_REPO)
