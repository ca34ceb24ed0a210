"""The Java hook: ``-Xbootclasspath/a:<jar>`` appended to ``JAVA_TOOL_OPTIONS``.

The jar holds only ``org/postgresql/driverconfig.properties`` with
``ApplicationName=<value>``, which pgjdbc reads as its defaults. It is built here (no
binary in the repository), cached in ``UA_AUTOTAG_CACHE_DIR``, else
``$XDG_CACHE_HOME/ua-autotag``, else ``~/.cache/ua-autotag``. An application's own
``ApplicationName`` still wins, in every mode: the jar only supplies a default.

Cheap to run: the jar is compared byte for byte, no ``zipfile`` (the launcher imports
this on every ``run``).
"""

from __future__ import annotations

import os
import re
import zlib

__all__ = [
    "CACHE_DIR_ENV",
    "DRIVERCONFIG",
    "cache_dir",
    "describe",
    "driverconfig",
    "ensure_jar",
    "hook",
    "jar_bytes",
    "jar_path",
    "java_fragment",
    "parse_java_tool_options",
]

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing: ~4 ms of the launcher's start-up
    from typing import Any, Mapping, Optional

CACHE_DIR_ENV = "UA_AUTOTAG_CACHE_DIR"
DRIVERCONFIG = "org/postgresql/driverconfig.properties"
_JAR_FORMAT = "2"  # part of the cache key: bump when the jar's content layout changes
_JAR_NAME = re.compile(r"ua-autotag-pgjdbc-[0-9a-f]{16}\.jar")


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


def hook(env: dict[str, str], value: str, mode: str) -> Optional[str]:
    """Add the hook to ``env``; the reason it was skipped, or None. (``mode`` does not
    matter here: the jar only supplies pgjdbc's default, below the application's.)"""
    existing = env.get("JAVA_TOOL_OPTIONS", "")
    tokens = _java_tokens(existing)
    if tokens is None:
        return "JAVA_TOOL_OPTIONS has an unmatched quote; left unchanged"
    directory = cache_dir(env)
    try:
        jar = ensure_jar(value, directory)
    except OSError as exc:
        from ..cli.common import one_line

        reason = one_line(exc.strerror or str(exc))
        return (
            f"cache directory {directory} is not writable ({reason}); "
            f"set {CACHE_DIR_ENV} to a writable directory"
        )
    fragment = java_fragment(jar)
    if fragment is None:
        return f"the cache path {jar} cannot be put in JAVA_TOOL_OPTIONS"
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


def describe(env: Mapping[str, str], value: str) -> dict[str, Any]:
    """For ``doctor``: the hook's row (``reason`` None: it would be added). Reads only:
    builds no jar; without a value the fragment names no jar."""
    directory = cache_dir(env)
    row: dict[str, Any] = {
        "runtime": "java",
        "variable": "JAVA_TOOL_OPTIONS",
        "fragment": None,
        "cache_dir": directory,
        "covers": "pgjdbc (ApplicationName default; the application's own setting wins)",
        "reason": None,
    }
    if _java_tokens(env.get("JAVA_TOOL_OPTIONS", "")) is None:
        row["reason"] = "JAVA_TOOL_OPTIONS has an unmatched quote"
    elif not value:
        row["reason"] = "no User-Agent value"
    else:
        jar = jar_path(value, directory)
        row.update(jar=jar, jar_ready=_jar_ok(jar, jar_bytes(driverconfig(value))))
        row["fragment"] = java_fragment(jar)
        if row["fragment"] is None:
            row["reason"] = f"the cache path {jar} cannot be put in JAVA_TOOL_OPTIONS"
        elif not row["jar_ready"]:
            ok, why = _writable_dir(directory)
            if not ok:
                row["reason"] = (
                    f"cache directory {directory} not usable ({why}); set {CACHE_DIR_ENV}"
                )
    return row
