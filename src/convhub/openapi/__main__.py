"""``python -m convhub.openapi [DIRECTORY]``: write the documents into DIRECTORY (default
``docs/openapi``) and say which ones changed."""

from __future__ import annotations

import sys
from pathlib import Path

from convhub.openapi import rendered


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print("usage: python -m convhub.openapi [DIRECTORY]", file=sys.stderr)
        return 2
    directory = Path(argv[0] if argv else "docs/openapi")
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in rendered().items():
        path = directory / name
        if path.exists() and path.read_bytes() == content:
            print(f"{path}: unchanged")
        else:
            path.write_bytes(content)
            print(f"{path}: written")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
