"""The harness shared by the client scripts (openai_client.py, anthropic_client.py,
responses_client.py, tools_client.py): their common arguments, the base classes of their
`Checks`, `check`, the expected failure of a client call, the structured-output model `City`,
and the run of the checks by name.

The scripts are run as `python3 crates/cli/tests/NAME.py`, so this module, beside them, is on
their `sys.path`.

A run prints `ok  NAME (seconds)` for each check that passes; the first failure prints
`FAIL NAME: why` (with the traceback when it is not a `CheckFailed`) and ends the run with exit
code 1; a full run ends with `SCRIPT: all N checks ok in S s`.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from typing import Any, Callable

from pydantic import BaseModel


class CheckFailed(AssertionError):
    pass


def check(cond: bool, msg: str) -> None:
    if not cond:
        raise CheckFailed(msg)


class ChecksBase:
    """What the scripts' `Checks` share: the server root (--base-url without a trailing `/` or
    `/v1`), --model, --api-key, and `need`."""

    def __init__(self, args: argparse.Namespace) -> None:
        root = args.base_url.rstrip("/")
        if root.endswith("/v1"):
            root = root[: -len("/v1")]
        self.root = root
        self.model = args.model
        self.api_key = args.api_key

    def need(self, attr: str, producer: str) -> None:
        """Runs the check `producer` first when its result `attr` is missing (with --only)."""
        if getattr(self, attr) is None:
            getattr(self, producer)()


class TextAndToolChecks(ChecksBase):
    """The `Checks` of a script given a model for text (--model) and one for tool calls
    (--tool-model): also the results that later checks reuse, filled by the first that makes
    them."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.tool_model = args.tool_model
        self.greedy = None  # the greedy answer to the scripts' COUNT prompt
        self.forced_call = None  # the forced get_weather call


class City(BaseModel):
    """The structured output asked for (`structured_output`)."""

    name: str
    country: str
    population: int


def expect_raise(exc_type, status_error, call, where: str, want: str | None = None):
    """Calls `call`, which must raise `exc_type`, and returns that exception. Another
    `status_error` (the client's base class of HTTP errors) or a success fails the check;
    `want` names what was expected in that failure (default: the name of `exc_type`)."""
    want = want or exc_type.__name__
    try:
        result = call()
    except exc_type as e:
        return e
    except status_error as e:
        raise CheckFailed(f"{where}: {type(e).__name__} (HTTP {e.status_code}), want "
                          f"{want}: {e.response.text[:300]}") from None
    raise CheckFailed(f"{where}: succeeded, want {want}: {result!r:.300}")


def parser(doc: str, model_help: str = "the served model id") -> argparse.ArgumentParser:
    """The arguments every script takes: --base-url, --model, --api-key (and --only, which
    `parse` adds last)."""
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", required=True, help="server root, e.g. http://127.0.0.1:8080")
    p.add_argument("--model", required=True, help=model_help)
    p.add_argument("--api-key", default=None, help="the server's API key, if it has one")
    return p


def parse(p: argparse.ArgumentParser, order: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Parses the command line; returns it and the checks to run: those of --only (each among
    `order`), else all of `order`."""
    p.add_argument("--only", action="append", default=[], help="run only these checks (repeatable)")
    args = p.parse_args()
    names = args.only or order
    unknown = [n for n in names if n not in order]
    if unknown:
        p.error(f"unknown checks {unknown}; known: {order}")
    return args, names


def run(script: str, p: argparse.ArgumentParser, checks_type, banner: Callable[[Any], str],
        note: Callable[[Any], str] = lambda checks: "") -> int:
    """A script's `main`: parses the command line (`parse`), makes its `checks_type(args)`,
    prints `banner(checks)` and runs the checks (`run_checks`); returns the exit code."""
    args, names = parse(p, checks_type.ORDER)
    checks = checks_type(args)
    print(banner(checks), flush=True)
    return run_checks(script, checks, names, lambda: note(checks))


def run_checks(script: str, checks, names: list[str],
               note: Callable[[], str] = lambda: "") -> int:
    """Runs the methods `names` of `checks` in order, stopping at the first failure; returns the
    exit code. `note()` is added to the summary line."""
    start = time.monotonic()
    passed = 0
    for name in names:
        t0 = time.monotonic()
        try:
            getattr(checks, name)()
        except Exception as e:  # noqa: BLE001 - every failure ends the run with its story
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            if not isinstance(e, CheckFailed):
                traceback.print_exc(file=sys.stdout)
            print(f"{script}: FAILED at {name} after {passed} ok checks "
                  f"({time.monotonic() - start:.1f} s)", flush=True)
            return 1
        passed += 1
        print(f"ok  {name} ({time.monotonic() - t0:.2f} s)", flush=True)
    print(f"{script}: all {passed} checks ok in {time.monotonic() - start:.1f} s{note()}",
          flush=True)
    return 0
