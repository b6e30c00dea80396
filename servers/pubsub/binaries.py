"""build.sh's question: the cache directory for the current Go sources (``binaries.py dir``).

Why a file here: build.sh runs it with any ``python3``, without the package installed, and
its own contents are part of the cache key, so it keeps calling this path. The hash itself is
dispatcher/local/pubsub.py's, which the local stack and the tests use to find the binaries.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dispatcher.local.pubsub import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
