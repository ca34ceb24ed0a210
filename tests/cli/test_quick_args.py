"""``ua-autotag run`` without argparse: its usual command lines are read by
``run.quick_args``, everything else by the argparse parser. The two must agree: for any
command line the quick reader accepts, argparse makes exactly the same namespace; where
argparse fails, the quick reader declines. The launcher then starts without argparse,
shutil or re (``which`` and the Java runtime's jar-name check are written for it, and are
held to ``shutil.which`` and the regular expression they replace)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cli.conftest import UA, clean_env
from ua_autotag.cli import build_parser
from ua_autotag.cli.run import quick_args, which
from ua_autotag.options import OPTIONS
from ua_autotag.runtimes import java

#: the pieces command lines are made of: every flag of ``run``, good and bad values, the
#: separator, commands, help, an abbreviation, an unknown option, ``=`` forms
TOKENS = [
    *(o.flag for o in OPTIONS if o.flag),  # a flag added there is tried here too
    "--user-agent", "--isv", "--product", "--version", "--version-from", "--disable",
    "--mode", "--no-spans", "--strict", "--rest-hosts", "--log-level", "--report",
    "--report-file", "--fail-on-untagged", "--", "-", "-h", "--help", "--user", "--bogus",
    UA, "Acme", "DatEng", "3.5", "append", "replace", "keep", "wrong", "text", "json",
    "a,b", ",", "psycopg", "DEBUG", "out.txt", "python", "app.py", "-c", "pass", "",
    "--mode=keep", "--mode=x", "--report=json", "--report=xml", "--user-agent=" + UA,
    "--disable=,", "--no-spans=1", "--rest-hosts=h1,h2", "--user-agent=",
]  # fmt: skip


def _argparse(argv: List[str]) -> Optional[Dict[str, Any]]:
    """What argparse makes of ``run ARGV``; None when it exits (an error, or help)."""
    parser = build_parser(("run",))
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        try:
            return vars(parser.parse_args(["run", *argv]))
        except SystemExit:
            return None


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=7))
def test_quick_reader_agrees_with_argparse(argv: List[str]) -> None:
    quick = quick_args(argv)
    if quick is None:
        return  # argparse reads it (and says what is wrong)
    assert vars(quick) == _argparse(argv), argv


def test_usual_command_lines_are_read_without_argparse() -> None:
    usual = [
        ["--user-agent", UA, "--", "python", "app.py"],
        ["--user-agent", UA, "python", "-c", "pass"],
        ["--isv", "Acme", "--product", "DatEng", "--version", "3.5", "--", "node", "s.js"],
        ["--user-agent=" + UA, "--mode", "replace", "--disable", "node,java", "--", "x"],
        ["--report", "--", "pytest"],
        ["--report=json", "--report-file", "out.json", "--fail-on-untagged", "--", "pytest"],
        ["--no-spans", "--strict", "--rest-hosts", "h1,h2", "--log-level", "DEBUG", "--", "x"],
        ["--", "gunicorn", "app:wsgi"],
        [],
    ]
    for argv in usual:
        quick = quick_args(argv)
        assert quick is not None, argv
        assert vars(quick) == _argparse(argv), argv


def test_the_rest_goes_to_argparse() -> None:
    for argv in (["-h"], ["--help"], ["--user", UA, "x"], ["--mode", "wrong", "x"],
                 ["--report", "python", "app.py"], ["--user-agent"], ["--disable", ","],
                 ["--user-agent", "-x", "y"], ["--bogus", "x"]):  # fmt: skip
        assert quick_args(argv) is None, argv


def test_launcher_imports_no_argparse_shutil_or_re(tmp_path: Path) -> None:
    """What the ``run`` process itself imports (the command is ``true``: a child that
    imports nothing), entered as uv's console scripts do (pip's own wrapper imports re)."""
    code = (
        "import sys; from ua_autotag.cli import main; "
        f"sys.argv = ['ua-autotag', 'run', '--user-agent', {UA!r}, '--', 'true']; "
        "sys.exit(main())"
    )
    env = clean_env(PYTHONPROFILEIMPORTTIME="1")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}  # fmt: skip
    assert "ua_autotag.cli.run" in imported  # the listing is the launcher's
    assert not imported & {"argparse", "shutil", "re", "enum", "gettext"}, sorted(imported)


def test_which_is_shutil_which(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    runnable = tmp_path / "bin1" / "tool"
    plain = tmp_path / "bin2" / "tool"
    folder = tmp_path / "bin3" / "tool"
    for path in (runnable, plain):
        path.parent.mkdir()
        path.write_text("#!/bin/sh\n")
    runnable.chmod(runnable.stat().st_mode | stat.S_IXUSR)
    folder.mkdir(parents=True)
    (tmp_path / "here").write_text("#!/bin/sh\n")
    (tmp_path / "here").chmod(0o755)
    dirs = {name: str(tmp_path / name) for name in ("bin1", "bin2", "bin3")}
    paths = [
        "", os.pathsep, f"{dirs['bin2']}{os.pathsep}{dirs['bin1']}",
        f"{dirs['bin3']}{os.pathsep}{dirs['bin2']}", f"{os.pathsep}{dirs['bin1']}",
        f"{dirs['bin1']}{os.pathsep}{dirs['bin1']}", "/nonexistent", os.defpath,
    ]  # fmt: skip
    programs = ["tool", "here", "./here", str(runnable), str(plain), "sh", "no-such-tool",
                "bin1/tool", str(folder)]  # fmt: skip
    for path in paths:
        for program in programs:
            assert which(program, path) == shutil.which(program, path=path), (program, path)


def test_jar_name_check_is_the_regular_expression() -> None:
    pattern = re.compile(r"ua-autotag-pgjdbc-[0-9a-f]{16}\.jar")
    names = [
        "ua-autotag-pgjdbc-0123456789abcdef.jar", "ua-autotag-pgjdbc-0123456789ABCDEF.jar",
        "ua-autotag-pgjdbc-0123456789abcde.jar", "ua-autotag-pgjdbc-0123456789abcdef0.jar",
        "ua-autotag-pgjdbc-.jar", "ua-autotag-pgjdbc-0123456789abcdeg.jar",
        "xua-autotag-pgjdbc-0123456789abcdef.jar", "ua-autotag-pgjdbc-0123456789abcdef.jarx",
        "postgresql.jar", "", "ua-autotag-pgjdbc-0123456789abcdef.jar\n",
    ]  # fmt: skip
    for name in names:
        assert java._is_our_jar(name) == (pattern.fullmatch(name) is not None), name
