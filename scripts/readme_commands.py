"""Print the README's shell blocks (```bash fences) as one script, in order, for CI.

CI runs exactly what the README tells users to run, so the README cannot drift from the truth.
Blocks fenced as ```text or ```console are illustrations and are not run.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FENCE = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)


def main(path: str) -> int:
    blocks = FENCE.findall(Path(path).read_text(encoding="utf-8"))
    if not blocks:
        print(f"no ```bash blocks in {path}", file=sys.stderr)
        return 1
    for block in blocks:
        sys.stdout.write(block)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
