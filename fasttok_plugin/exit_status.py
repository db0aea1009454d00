"""Exit statuses shared by the command-line tools, and how they put an error on one line.

Both `fasttok` and `fasttok-preflight` follow the linter convention CI engineers know: 0 clean,
1 problems found, 2 usage error or unreadable input.
"""

from __future__ import annotations

import os
import sys
import traceback

from fasttok_plugin._extras import missing_extra

__all__ = ["EXIT_ERRORS", "EXIT_OK", "EXIT_USAGE", "one_line", "report_internal_error"]

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


def one_line(exc: BaseException) -> str:
    """``exc`` as one line: its problems joined by ``; `` (a `MixtureError`), else every line of its message.

    Used for the CLIs' error lines and for findings, whose messages must fit on one line.
    """
    problems = getattr(exc, "problems", ())
    if problems:
        return "; ".join(str(problem) for problem in problems)
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__


def report_internal_error(prog: str, exc: BaseException) -> int:
    """Print one readable line for an unexpected exception and return the usage exit status.

    A bug is not a user mistake, so no traceback by default; ``FASTTOK_DEBUG=1`` re-raises ``exc``. A
    dependency of a missing extra is a setup problem, not a bug: the line says which extra to install.

    Args:
        prog: The command's name, printed first.
        exc: The exception that escaped the command.

    Returns:
        `EXIT_USAGE`.
    """
    if os.environ.get("FASTTOK_DEBUG"):
        raise exc
    extra = missing_extra(exc, prog)
    if extra is not None:  # not a bug: the base install lacks an extra; say which one
        print(f"{prog}: error: {extra}", file=sys.stderr)
        return EXIT_USAGE
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    print(
        f"{prog}: internal error: {type(exc).__name__}: {exc}{where}; please report it "
        "(set FASTTOK_DEBUG=1 for the traceback)",
        file=sys.stderr,
    )
    return EXIT_USAGE
