"""`lab`: list, read, run, check and explore the labs.

Exit status: 0 = all checks passed, 1 = a check failed, 2 = bad input or a
missing prerequisite (one line on stderr), 130/143 = interrupted (everything
the run started has been stopped).

The package, one job a module: `parser` (the command line), `running` (run, check,
demo), `exploring` (up, status, down; `lab fault` is labs.engine.cli.faults),
`exercises` (exercise, grade, hint, solution), `reports` (list, show, report) and
`output` (consoles, tables, live progress). This module turns a handler's result or
error into the exit status.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence

from labs.engine.cli.output import err
from labs.engine.cli.parser import build_parser
from labs.engine.errors import LabError
from labs.engine.runner import Interrupted

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except LabError as exc:
        err.print(f"lab: error: {exc}", highlight=False, markup=False, soft_wrap=True)
        return 2
    except (Interrupted, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
        err.print(
            f"lab: interrupted ({signal.Signals(signum).name}); stopped everything it started",
            highlight=False,
        )
        return 128 + signum
    except BrokenPipeError:
        return 1
