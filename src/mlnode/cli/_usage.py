"""The one stderr line for an error click finds, or for an exception nobody anticipated.

Click reports usage errors as a usage block plus ``Error: ...``; mlnode reports every
error as ``mlnode: error: <where>: <what>``, where ``<where>`` is the option or argument
(``--format``, ``IMAGE``) or, when no parameter is to blame, the command (``lint``).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["internal_error_line", "usage_error_line"]

#: Unexpected exceptions that come from a value mlnode did not validate (the input is
#: what to change): exit 2. Anything else is a bug in mlnode: exit 1.
_INPUT_EXCEPTIONS = (ValueError, TypeError, RecursionError)


_NO_SUCH_COMMAND = re.compile(r"No such command '(.*?)'\.(?: Did you mean (.*)\?)?")


def _sentence(text: str) -> str:
    """Click's "Path 'x' does not exist." as mlnode's "path 'x' does not exist"."""
    text = " ".join(text.split()).rstrip(".")
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        text = text[0].lower() + text[1:]
    return text.removeprefix("value error, ")


def _param_name(param: Any) -> str:
    opts = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    if getattr(param, "param_type_name", "") == "option" and opts:
        return str(opts[0])
    return str(getattr(param, "metavar", None) or param.name).upper()


def _command(e: Any) -> str:
    ctx = getattr(e, "ctx", None)
    if ctx is None:
        return "mlnode"
    words = str(ctx.command_path).split()[1:]
    return " ".join(words) if words else "mlnode"


def usage_error_line(e: Any) -> str:
    """One line for a click ``ClickException`` (``UsageError`` and its subclasses)."""
    kind = type(e).__name__
    param = getattr(e, "param", None)
    if kind == "MissingParameter":
        where = _param_name(param) if param is not None else _command(e)
        what = f"missing ({_command(e)} needs it)"
    elif param is not None:
        where, what = _param_name(param), _sentence(e.message)
    elif kind == "NoSuchOption":
        where, what = e.option_name, f"no such option for {_command(e)}"
        if e.possibilities:
            what += f" (did you mean {', '.join(sorted(e.possibilities))}?)"
    elif getattr(e, "option_name", None):
        where = e.option_name
        what = _sentence(e.message).removeprefix(f"option {where!r} ")
    elif (m := _NO_SUCH_COMMAND.fullmatch(e.format_message())) is not None:
        hint = f"did you mean {m.group(2)}?" if m.group(2) else f"`{_command(e)} --help` lists them"
        where, what = m.group(1), f"no such command ({hint})"
    else:
        where, what = _command(e), _sentence(e.format_message())
    return f"mlnode: error: {where}: {what}"


def internal_error_line(e: BaseException) -> tuple[str, int]:
    """The line and exit code for an exception outside mlnode's error tree."""
    if isinstance(e, RecursionError):
        return (
            "mlnode: error: input nested too deeply to read (run with --debug for the traceback)",
            2,
        )
    message = " ".join(str(e).split()) or "(no message)"
    code = 2 if isinstance(e, _INPUT_EXCEPTIONS) else 1
    return (
        f"mlnode: error: internal error: {type(e).__name__}: {message} "
        "(run with --debug for the traceback)",
        code,
    )
