"""The ``convhub`` command. A client-only install (``pip install convhub``) has the command but
not the server's libraries: it then says so in one line instead of an import traceback."""

from __future__ import annotations

import sys

SERVER_MISSING = (
    "convhub: the server is not installed here (no module {module!r}); "
    "install it with: pip install 'convhub[server]'"
)


def main() -> int:
    try:
        from convhub.cli import main as cli_main
    except ModuleNotFoundError as error:
        if error.name is None or error.name.partition(".")[0] == "convhub":
            raise  # a module of our own missing is a broken install, not a missing extra
        print(SERVER_MISSING.format(module=error.name), file=sys.stderr)
        return 1
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
