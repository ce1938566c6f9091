"""How the ``fastregen`` command reports user errors: one line, exit code 2.

Every subcommand runs inside `FastregenGroup`, so no command needs its own
try/except: a user error anywhere (a missing or malformed input, a bad
option value, an output that cannot be written, a broken gzip file, a
missing optional dependency) becomes::

    error: FILE[:LINE]: what, and what to do

on stderr and exit code 2, never a traceback. The library's messages
already name the file, line and value; this layer only formats them,
names OS errors' files, and says the CLI flag where a message names a
Python argument (``pass remap=True`` -> ``pass --remap``). Usage errors
(unknown options, missing arguments) get the same one-line form.

Anything else (a bug) keeps its traceback; ``FASTREGEN_DEBUG=1`` shows the
traceback of user errors too.
"""

from __future__ import annotations

import errno
import os
import re
import sys

import typer
from typer.core import TyperGroup

try:  # typer >= 0.22 vendors its own copy of click
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - older typer runs on click itself
    from click.exceptions import ClickException, UsageError

__all__ = ["FastregenGroup", "USER_ERRORS", "describe", "cli_flags"]


def _user_error_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [
        ValueError,  # bad content or values (UnicodeDecodeError, pyarrow's ArrowInvalid included)
        TypeError,  # a config value of the wrong type
        OSError,  # missing / unreadable / unwritable files
        EOFError,  # truncated compressed input that escaped the readers
        ImportError,  # an optional dependency (pyarrow, matplotlib) is missing
        MemoryError,
        FloatingPointError,  # training diverged
    ]
    try:
        import yaml

        types.append(yaml.YAMLError)
    except ImportError:  # pragma: no cover - pyyaml is a dependency
        pass
    return tuple(types)


USER_ERRORS = _user_error_types()

# Library messages name Python arguments; on the command line the same
# advice is a flag.
_FLAG_FOR = [
    (re.compile(r"pass remap=True"), "pass --remap"),
    (re.compile(r"pass (user|item|timestamp)='<column>'"), r"pass --\1 <column>"),
    (re.compile(r"pass format='(\w+)' or '(\w+)'"), r"pass --format \1 or --format \2"),
    (re.compile(r"pass format='(\w+)'"), r"pass --format \1"),
    (re.compile(r"not to format='(\w+)'"), r"not to --format \1"),
    (re.compile(r"\b(user|item|timestamp|sep)\b(?=(?:, (?:user|item|timestamp|sep))* only apply to csv)"), r"--\1"),
    (re.compile(r"span='alpha' needs"), "--span alpha needs"),
    (re.compile(r"pass span=<int> or span=None"), "pass --span <int> or --span none"),
    (re.compile(r"pass drop_empty=True"), "drop them first"),
    (re.compile(r"renumber the items 1\.\.N first with fastregen\.data\.remap\(ds\)"), "pass --remap"),
]

# What to do about an OS error, by errno.
_OS_HINTS = {
    errno.ENOENT: "check the path",
    errno.EACCES: "check its permissions, or choose another path",
    errno.EPERM: "check its permissions, or choose another path",
    errno.EISDIR: "name a file, not a folder",
    errno.ENOTDIR: "a folder in the path is a file",
    errno.EEXIST: "remove it or choose another path",
    errno.ENOSPC: "free some disk space, or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.ELOOP: "the path is a symlink loop",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def cli_flags(message: str) -> str:
    """``message`` with the Python arguments it names replaced by CLI flags."""
    for pattern, flag in _FLAG_FOR:
        message = pattern.sub(flag, message)
    return message


def describe(exc: BaseException) -> str:
    """One line for a user error: ``FILE[:LINE]: what, and what to do``."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        what = exc.strerror
        hint = _OS_HINTS.get(exc.errno or 0, "")
        if hint and hint not in what:
            what = f"{what}; {hint}"
        where = os.fspath(exc.filename)
        if getattr(exc, "filename2", None) is not None:
            where = f"{where} -> {os.fspath(exc.filename2)}"
        message = f"{where}: {what}"
    elif isinstance(exc, MemoryError):
        message = "out of memory" + (f" ({exc})" if str(exc) else "") + "; try a smaller input or setting"
    else:
        message = str(exc) or type(exc).__name__
        if isinstance(exc, KeyError):  # pragma: no cover - str() of a KeyError is its repr
            message = str(exc.args[0]) if exc.args else message
    # One line: messages from dependencies (pyarrow, yaml) may span several.
    message = " ".join(line.strip() for line in message.splitlines() if line.strip())
    return cli_flags(message)


class _UserError(ClickException):
    """A user error on its way from a command to `FastregenGroup.main`."""

    exit_code = 2


class FastregenGroup(TyperGroup):
    """The ``fastregen`` command group: user errors become one ``error:`` line and exit code 2."""

    def invoke(self, ctx):
        # Runs the subcommand (parsing its options included), so both its
        # usage errors and the exceptions of its body pass through here.
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, _UserError):
            raise
        except BrokenPipeError:  # stdout's reader went away (`| head -1`): click exits 1, quietly
            raise
        except ClickException as e:
            raise _UserError(_usage_message(e)) from e
        except USER_ERRORS as e:
            if os.environ.get("FASTREGEN_DEBUG"):
                raise
            raise _UserError(describe(e)) from e

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
            code = code if isinstance(code, int) else 0
        except _UserError as e:
            typer.echo(f"error: {e.message}", err=True)
            code = e.exit_code
        except ClickException as e:  # usage errors of the group itself (fastregen --bogus)
            if e.format_message().strip():  # (a bare `fastregen` has printed its help instead)
                typer.echo(f"error: {_usage_message(e)}", err=True)
            code = e.exit_code
        except typer.Abort as e:
            if isinstance(e.__cause__, KeyboardInterrupt):  # click's own Ctrl-C handling (a command's imports)
                typer.echo("interrupted", err=True)
                code = 130
            else:
                typer.echo("error: aborted", err=True)
                code = 1
        except KeyboardInterrupt:  # Ctrl-C, even while torch is being imported: no traceback
            typer.echo("\ninterrupted", err=True)
            code = 130
        if standalone_mode:
            sys.exit(code)
        return code


def _usage_message(e: ClickException) -> str:
    ctx = getattr(e, "ctx", None)
    message = " ".join(e.format_message().split())
    if message.endswith("."):
        message = message[:-1]
    if ctx is not None and isinstance(e, UsageError):
        message += f" (see '{ctx.command_path} --help')"
    return message[:1].lower() + message[1:]
