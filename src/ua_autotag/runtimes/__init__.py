"""Hooks that carry the User-Agent into non-Python children of ``ua-autotag run``.

The launcher already exports ``PGAPPNAME`` (psql, libpq programs, node-postgres) and
``SPARK_CONNECT_USER_AGENT`` (Spark Connect clients, Python or Scala). This module adds
what a Node.js or Java child needs on top, through variables their runtimes read at
start-up, so no program changes:

* ``node``: ``--require <preload.cjs>`` appended to ``NODE_OPTIONS``. The preload merges
  our value into ``userAgentEntry`` when the application connects with
  ``@databricks/sql`` (CommonJS or ESM); it reads the value from
  ``UA_AUTOTAG_NODE_USER_AGENT`` (written here only when it differs from
  ``UA_AUTOTAG_USER_AGENT``) and the mode from ``UA_AUTOTAG_NODE_MODE`` (likewise, over
  ``UA_AUTOTAG_MODE``).
* ``java``: ``-Xbootclasspath/a:<jar>`` appended to ``JAVA_TOOL_OPTIONS``; the jar holds
  only ``org/postgresql/driverconfig.properties`` with ``ApplicationName=<value>``, which
  pgjdbc reads as its defaults. It is built here (no binary in the repository), cached
  in ``UA_AUTOTAG_CACHE_DIR``, else ``$XDG_CACHE_HOME/ua-autotag``, else
  ``~/.cache/ua-autotag``. An application's own ``ApplicationName`` still wins, in every
  mode: the jar only supplies a default.

A runtime that is not on ``PATH`` gets its hook all the same (the child may start one
from another directory; an unused variable costs nothing) and no warning: ``describe``
reports it. A hook that cannot be set up (damaged preload file, unwritable cache, an
unparsable existing variable) is skipped with one warning line; nothing here raises.

Stdlib only and cheap to import, and cheap to run (the jar is compared byte for byte,
no ``zipfile``): the launcher imports it on every ``run``.
"""

from __future__ import annotations

import os
import re
import zlib

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and contextlib: ~4 ms of the launcher's start-up
    from typing import Any, Collection, Mapping, Optional

__all__ = [
    "CACHE_DIR_ENV",
    "NODE_MODE_ENV",
    "NODE_USER_AGENT_ENV",
    "PGJDBC_JAR",
    "PRELOAD",
    "RUNTIMES",
    "cache_dir",
    "child_environment",
    "describe",
    "ensure_jar",
    "java_fragment",
    "node_fragment",
    "parse_java_tool_options",
    "parse_node_options",
    "verify_java",
    "verify_node",
]

RUNTIMES = ("node", "java")
MODES = ("append", "replace", "keep")

NODE_USER_AGENT_ENV = "UA_AUTOTAG_NODE_USER_AGENT"
NODE_MODE_ENV = "UA_AUTOTAG_NODE_MODE"
CACHE_DIR_ENV = "UA_AUTOTAG_CACHE_DIR"

#: the Node.js preload shipped as package data
PRELOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node", "preload.cjs")
#: CRC-32 of PRELOAD as shipped: a damaged or truncated copy would make ``node`` itself
#: fail at start (a syntax error is not catchable inside the file), so it is checked
#: before the hook is added (damage, not tampering: whoever can rewrite the package can
#: rewrite this module too; zlib is loaded anyway, hashlib's OpenSSL would cost the
#: launcher ~2 ms). tests/runtimes checks this constant against the file.
PRELOAD_CRC32 = "54435e61"

#: Debian's libpostgresql-jdbc-java
PGJDBC_JAR = "/usr/share/java/postgresql.jar"
DRIVERCONFIG = "org/postgresql/driverconfig.properties"
_JAR_FORMAT = "2"  # part of the cache key: bump when the jar's content layout changes
_JAR_NAME = re.compile(r"ua-autotag-pgjdbc-[0-9a-f]{16}\.jar")


def _disabled(disabled: Collection[str]) -> set[str]:
    names = {str(n).strip().lower() for n in disabled}
    return set(RUNTIMES) if "all" in names else names


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# -- NODE_OPTIONS -----------------------------------------------------------------------
def parse_node_options(text: str) -> list[str]:
    """Split ``NODE_OPTIONS`` exactly as node does (``ParseNodeOptionsEnvVar``).

    Only spaces separate; double quotes group; a backslash escapes the next character
    inside quotes only. Raises ``ValueError`` where node would refuse to start.
    """
    args: list[str] = []
    in_string = False
    new_arg = True
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and in_string:
            if i + 1 == len(text):
                raise ValueError("invalid escape at the end")
            i += 1
            c = text[i]
        elif c == " " and not in_string:
            new_arg = True
            i += 1
            continue
        elif c == '"':
            in_string = not in_string
            i += 1
            continue
        if new_arg:
            args.append(c)
            new_arg = False
        else:
            args[-1] += c
        i += 1
    if in_string:
        raise ValueError("unterminated string")
    return args


def _node_quote(arg: str) -> str:
    if arg and not any(c in arg for c in ' "\\'):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def node_fragment(preload: str = PRELOAD) -> str:
    """What the hook appends to ``NODE_OPTIONS``."""
    return f"--require {_node_quote(preload)}"


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.realpath(a) == os.path.realpath(b)
    except (OSError, ValueError):
        return False


def _node_has_preload(args: list[str], preload: str) -> bool:
    for i, arg in enumerate(args):
        if arg in ("--require", "-r") and i + 1 < len(args) and _same_file(args[i + 1], preload):
            return True
        if arg.startswith("--require=") and _same_file(arg[len("--require=") :], preload):
            return True
    return False


def _preload_problem(preload: str) -> Optional[str]:
    try:
        with open(preload, "rb") as fh:
            digest = f"{zlib.crc32(fh.read()):08x}"
    except OSError as exc:
        return f"preload file unreadable ({_one_line(exc.strerror or str(exc))}: {preload})"
    if digest != PRELOAD_CRC32:
        return f"preload file damaged (content differs from the shipped one: {preload})"
    return None


def _node_hook(env: dict[str, str], value: str, mode: str) -> Optional[str]:
    problem = _preload_problem(PRELOAD)
    if problem is not None:
        return f"node hook skipped: {problem}; reinstall ua-autotag"
    existing = env.get("NODE_OPTIONS", "")
    try:
        args = parse_node_options(existing)
    except ValueError as exc:
        return f"node hook skipped: NODE_OPTIONS is not valid for node ({exc}); left unchanged"
    if not _node_has_preload(args, PRELOAD):
        fragment = node_fragment(PRELOAD)
        env["NODE_OPTIONS"] = f"{existing} {fragment}" if existing.strip() else fragment
    # the preload reads UA_AUTOTAG_USER_AGENT / UA_AUTOTAG_MODE (the launcher's own) unless
    # these say otherwise; written only when they must, removed when stale (nested runs)
    if env.get("UA_AUTOTAG_USER_AGENT", "").strip() == value:
        env.pop(NODE_USER_AGENT_ENV, None)
    else:
        env[NODE_USER_AGENT_ENV] = value
    if (env.get("UA_AUTOTAG_MODE", "").strip().lower() or "append") == mode:
        env.pop(NODE_MODE_ENV, None)
    else:
        env[NODE_MODE_ENV] = mode
    return None


# -- JAVA_TOOL_OPTIONS ------------------------------------------------------------------
def _java_tokens(text: str) -> Optional[list[tuple[int, int, str]]]:
    """(start, end, option) for each option, as HotSpot splits ``JAVA_TOOL_OPTIONS``.

    Whitespace separates; a single- or double-quoted part is taken literally (no escapes).
    None where the JVM would refuse to start (an unmatched quote).
    """
    out: list[tuple[int, int, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        start, word = i, []
        while i < n and not text[i].isspace():
            if text[i] in "'\"":
                end = text.find(text[i], i + 1)
                if end < 0:
                    return None
                word.append(text[i + 1 : end])
                i = end + 1
            else:
                word.append(text[i])
                i += 1
        out.append((start, i, "".join(word)))
    return out


def parse_java_tool_options(text: str) -> list[str]:
    """Split ``JAVA_TOOL_OPTIONS`` as HotSpot does; ``ValueError`` on an unmatched quote."""
    tokens = _java_tokens(text)
    if tokens is None:
        raise ValueError("unmatched quote")
    return [t[2] for t in tokens]


def _java_quote(arg: str) -> Optional[str]:
    if not any(c.isspace() or c in "'\"" for c in arg):
        return arg
    for quote in ('"', "'"):
        if quote not in arg:
            return f"{quote}{arg}{quote}"
    return None  # both quote characters and whitespace: the JVM cannot be told


def java_fragment(jar: str) -> Optional[str]:
    """What the hook appends to ``JAVA_TOOL_OPTIONS`` (None: not expressible there)."""
    return _java_quote(f"-Xbootclasspath/a:{jar}")


def _ours(option: str) -> bool:
    if not option.startswith("-Xbootclasspath/a:"):
        return False
    return _JAR_NAME.fullmatch(os.path.basename(option[len("-Xbootclasspath/a:") :])) is not None


def cache_dir(env: Mapping[str, str]) -> str:
    """Where the jar is cached: ``UA_AUTOTAG_CACHE_DIR``, XDG, or ``~/.cache``."""
    explicit = env.get(CACHE_DIR_ENV, "").strip()
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    if xdg and os.path.isabs(xdg):
        return os.path.join(xdg, "ua-autotag")
    home = env.get("HOME", "").strip() or os.path.expanduser("~")
    return os.path.join(home, ".cache", "ua-autotag")


def _properties_escape(value: str) -> str:
    """``value`` as a java.util.Properties value (ISO-8859-1 file, \\uXXXX for the rest)."""
    out = []
    for i, ch in enumerate(value):
        code = ord(ch)
        if ch == "\\":
            out.append("\\\\")
        elif ch == " " and i == 0:
            out.append("\\ ")
        elif ch in "=:#!":
            out.append("\\" + ch)
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\f":
            out.append("\\f")
        elif 0x20 <= code <= 0x7E:
            out.append(ch)
        else:
            hexed = ch.encode("utf-16-be", "surrogatepass").hex()
            out.extend(f"\\u{hexed[k : k + 4]}" for k in range(0, len(hexed), 4))
    return "".join(out)


def driverconfig(value: str) -> bytes:
    """The content of the jar's one resource."""
    return (
        "# written by ua-autotag: pgjdbc defaults, below the application's own settings\n"
        f"ApplicationName={_properties_escape(value)}\n"
    ).encode("ascii")


def jar_path(value: str, directory: str) -> str:
    """The cache file of ``value``'s jar: named by two 32-bit checksums of the value (a
    collision only costs a rebuild: the content is compared byte for byte on reuse)."""
    key = f"{_JAR_FORMAT}\0{value}".encode("utf-8", "surrogatepass")
    return os.path.join(
        directory, f"ua-autotag-pgjdbc-{zlib.crc32(key):08x}{zlib.adler32(key):08x}.jar"
    )


def jar_bytes(payload: bytes) -> bytes:
    """The jar, byte for byte: one stored (uncompressed) entry, :data:`DRIVERCONFIG`.

    A fixed layout (no compression, fixed time, no extra fields), so the same value
    always gives the same bytes and a cached jar is checked by comparing bytes - no
    ``zipfile`` on the launcher's path (importing it costs more than the rest of the
    launcher's own start-up). ZIP layout (APPNOTE 4.3): local header + data, central
    directory entry, end of central directory; ``tests/runtimes/test_java.py`` reads it
    back with ``zipfile`` and the JVM loads it.
    """
    import struct

    name = DRIVERCONFIG.encode("ascii")
    crc, size = zlib.crc32(payload), len(payload)
    # fixed DOS date 1980-01-01 00:00:00; "made by" UNIX (3), so the mode bits count
    dos_time, dos_date = 0, (1 << 5) | 1
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, dos_time, dos_date, crc, size, size, len(name), 0
    )
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        0x02014B50, (3 << 8) | 20, 20, 0, 0, dos_time, dos_date, crc, size, size,
        len(name), 0, 0, 0, 0, 0o100644 << 16, 0,
    )  # fmt: skip
    entry = local + name + payload
    directory = central + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(directory), len(entry), 0)
    return entry + directory + end


def _jar_ok(path: str, expected: bytes) -> bool:
    try:
        if os.path.islink(path) or not os.path.isfile(path):
            return False
        with open(path, "rb") as fh:
            return fh.read(len(expected) + 1) == expected
    except OSError:  # unreadable: rebuild
        return False


def ensure_jar(value: str, directory: str) -> str:
    """The cached jar for ``value``, (re)built atomically unless a valid one is there.

    Checked on every reuse (exactly the bytes we build: one resource, our content): a
    truncated or tampered cache file is replaced, never handed to the JVM. Raises
    ``OSError``.
    """
    expected = jar_bytes(driverconfig(value))
    path = jar_path(value, directory)
    if _jar_ok(path, expected):
        return path
    import tempfile

    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ua-autotag-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(expected)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:  # noqa: SIM105 - contextlib costs the launcher ~0.7 ms
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if not _jar_ok(path, expected):
        raise OSError(f"the jar written to {path} does not read back")
    return path


def _java_hook(env: dict[str, str], value: str) -> Optional[str]:
    existing = env.get("JAVA_TOOL_OPTIONS", "")
    tokens = _java_tokens(existing)
    if tokens is None:
        return "java hook skipped: JAVA_TOOL_OPTIONS has an unmatched quote; left unchanged"
    directory = cache_dir(env)
    try:
        jar = ensure_jar(value, directory)
    except OSError as exc:
        reason = _one_line(exc.strerror or str(exc))
        return (
            f"java hook skipped: cache directory {directory} is not writable ({reason}); "
            f"set {CACHE_DIR_ENV} to a writable directory"
        )
    fragment = java_fragment(jar)
    if fragment is None:
        return f"java hook skipped: the cache path {jar} cannot be put in JAVA_TOOL_OPTIONS"
    mine = [t for t in tokens if _ours(t[2])]
    if len(mine) == 1 and mine[0][2] == f"-Xbootclasspath/a:{jar}":
        return None  # nested launch with the same value: already there
    text = existing
    if mine:  # an earlier launch's jar (another value) out; the rest kept as written
        pieces, last = [], 0
        for start, end, _ in mine:
            pieces.append(existing[last:start])
            last = end
        pieces.append(existing[last:])
        text = " ".join(p.strip() for p in pieces if p.strip())
    env["JAVA_TOOL_OPTIONS"] = f"{text.rstrip()} {fragment}" if text.strip() else fragment
    return None


# -- the launcher's entry points ------------------------------------------------------------
def child_environment(
    env: dict[str, str], value: str, mode: str, disabled: Collection[str] = ()
) -> list[str]:
    """Add the hook of every runtime not in ``disabled`` (``"all"`` = all) to ``env``.

    Returns one warning line per hook that had to be skipped; never raises, so the
    child always starts. Existing ``NODE_OPTIONS`` / ``JAVA_TOOL_OPTIONS`` are kept
    (ours is appended) and a second call on the result changes nothing.
    """
    warnings: list[str] = []
    try:
        off = _disabled(disabled)
    except Exception as exc:  # a caller's odd collection: treat as none disabled
        warnings.append(f"runtime hooks: disabled list ignored ({_one_line(str(exc))})")
        off = set()
    wanted = [r for r in RUNTIMES if r not in off]
    if not wanted:
        return warnings
    if not isinstance(value, str) or not value.strip():
        return [*warnings, *(f"{r} hook skipped: no User-Agent value" for r in wanted)]
    value = value.strip()
    mode = str(mode).strip().lower()
    if mode not in MODES:
        return [*warnings, *(f"{r} hook skipped: unknown mode {mode!r}" for r in wanted)]
    for runtime in wanted:
        try:
            node = runtime == "node"
            problem = _node_hook(env, value, mode) if node else _java_hook(env, value)
        except Exception as exc:  # never let a hook stop the child
            problem = f"{runtime} hook skipped: {type(exc).__name__}: {_one_line(str(exc))}"
        if problem:
            warnings.append(problem)
    return warnings


def _writable_dir(directory: str) -> tuple[bool, Optional[str]]:
    """Whether ``directory`` exists or could be created and written, without writing."""
    probe = directory
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        return False, f"{probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return False, f"{probe} is not writable"
    return True, None


def describe(
    env: Mapping[str, str], disabled: Collection[str] = (), *, value: Optional[str] = None
) -> list[dict[str, Any]]:
    """Per runtime, for ``ua-autotag doctor``: would the hook be added, and what.

    Reads only (builds no jar). ``value`` defaults to what the preload would read from
    ``env``; without one the Java fragment names no jar.
    """
    off = _disabled(disabled)
    if value is None:
        value = (env.get(NODE_USER_AGENT_ENV) or env.get("UA_AUTOTAG_USER_AGENT") or "").strip()
    return [_finish(_describe_node(env, off), env), _finish(_describe_java(env, off, value), env)]


def _finish(row: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Fill ``would_add``, the binary, and the reason when it is only missing from PATH."""
    import shutil

    runtime = row["runtime"]
    row["binary"] = shutil.which(runtime, path=env.get("PATH"))
    row["would_add"] = row["reason"] is None
    if row["reason"] is None and row["binary"] is None:
        row["reason"] = (
            f"{runtime} not on PATH (the hook is added anyway: a child may find it later)"
        )
    return row


def _describe_node(env: Mapping[str, str], off: Collection[str]) -> dict[str, Any]:
    node: dict[str, Any] = {
        "runtime": "node",
        "variable": "NODE_OPTIONS",
        "fragment": node_fragment(PRELOAD),
        "covers": "@databricks/sql (userAgentEntry); node-postgres reads PGAPPNAME",
        "reason": "disabled" if "node" in off else _preload_problem(PRELOAD),
    }
    if node["reason"] is None:
        try:
            args = parse_node_options(env.get("NODE_OPTIONS", ""))
        except ValueError as exc:
            node["reason"] = f"NODE_OPTIONS is not valid for node ({exc})"
        else:
            node["present"] = _node_has_preload(args, PRELOAD)
    return node


def _describe_java(env: Mapping[str, str], off: Collection[str], value: str) -> dict[str, Any]:
    directory = cache_dir(env)
    java: dict[str, Any] = {
        "runtime": "java",
        "variable": "JAVA_TOOL_OPTIONS",
        "fragment": None,
        "cache_dir": directory,
        "covers": "pgjdbc (ApplicationName default; the application's own setting wins)",
        "reason": None,
    }
    if "java" in off:
        java["reason"] = "disabled"
    elif _java_tokens(env.get("JAVA_TOOL_OPTIONS", "")) is None:
        java["reason"] = "JAVA_TOOL_OPTIONS has an unmatched quote"
    elif not value:
        java["reason"] = "no User-Agent value"
    else:
        jar = jar_path(value, directory)
        java.update(
            jar=jar, jar_ready=_jar_ok(jar, driverconfig(value)), fragment=java_fragment(jar)
        )
        if java["fragment"] is None:
            java["reason"] = f"the cache path {jar} cannot be put in JAVA_TOOL_OPTIONS"
        elif not java["jar_ready"]:
            ok, why = _writable_dir(directory)
            if not ok:
                java["reason"] = (
                    f"cache directory {directory} not usable ({why}); set {CACHE_DIR_ENV}"
                )
    return java


# -- proofs for ``ua-autotag verify`` ----------------------------------------------------
def verify_node(
    value: str,
    timeout: float = 60.0,
    *,
    mode: str = "append",
    cwd: Optional[str] = None,
    host: str = "127.0.0.1",
    port: int = 5432,
    user: str = "postgres",
    dbname: str = "postgres",
    password: Optional[str] = None,
) -> dict[str, Any]:
    """Run a real Node.js client with the hook and report what its peer received.

    ``@databricks/sql`` (resolved from ``cwd``, then ``NODE_PATH``) against a local HTTPS
    recorder; else ``pg`` against PostgreSQL (through ``PGAPPNAME``, as the launcher
    exports it); else ``{"skip": reason}``.
    """
    from ._verify import verify_node as run

    try:
        return run(value, timeout, mode, cwd, host, port, user, dbname, password)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {_one_line(str(exc))}"}


def verify_java(
    value: str,
    timeout: float = 60.0,
    *,
    host: str = "127.0.0.1",
    port: int = 5432,
    user: str = "postgres",
    dbname: str = "postgres",
    password: Optional[str] = None,
    jar: str = PGJDBC_JAR,
) -> dict[str, Any]:
    """Run an unmodified pgjdbc program with the hook; report the server's application_name.

    ``{"skip": reason}`` without ``java``, a JDK's source launcher, or the pgjdbc jar.
    """
    from ._verify import verify_java as run

    try:
        return run(value, timeout, host, port, user, dbname, password, jar)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {_one_line(str(exc))}"}
