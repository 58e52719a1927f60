"""How every command-line entry point answers an error the user can fix.

`common.UserError` becomes one line `error: <message>` on stderr and exit status 2, with no
traceback; anything else is a bug and keeps its traceback.
"""

import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from common import UserError

USER_ERROR_STATUS = 2
PROGRAM = "ssm-bench"  # the console script (harness.console) that the README teaches


def program(command: str) -> str:
    """How messages and `--help` name a subcommand: `program("status")` -> `ssm-bench status`."""
    return f"{PROGRAM} {command}"


def report_user_error(error: UserError) -> int:
    """Print `error` as one line on stderr; the exit status for it."""
    print(f"error: {error}", file=sys.stderr)
    return USER_ERROR_STATUS


def exits_on_user_error(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a `main(argv) -> exit status` so that a `UserError` returns 2 after its message."""

    @functools.wraps(main)
    def guarded(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except UserError as error:
            return report_user_error(error)

    return guarded


def make_folder(folder: Path, what: str, fix: str) -> None:
    """Create `folder` (and its parents) or raise `UserError`: `cannot create <what> <folder>
    (<why>); <fix>` (an unwritable or read-only place, a file in the way)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"cannot create {what} {folder} ({error.strerror or error}); {fix}"
        ) from None


def parse_key_values(
    pairs: Sequence[str], flag: str, example: str, *, typed: bool = True
) -> dict[str, object]:
    """`KEY=VALUE` strings of option `flag` -> {key: value}, the one parser of every command.

    With `typed`, values are parsed as YAML scalars (`true`, `0.01`, `zoh` become a bool, a float
    and a string); without, they stay the text after `=` (tag and filter values). Keys and text
    values are stripped of surrounding blanks. A pair without `=` or key is a `UserError` showing
    `example`.
    """
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} {pair!r} must look like KEY=VALUE, e.g. {flag} {example}")
        options[key.strip()] = yaml.safe_load(value) if typed else value.strip()
    return options
