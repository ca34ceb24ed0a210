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

import errno
import os
import stat
import zlib

from ..settings import CACHE_DIR_VAR
from . import trust

__all__ = [
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

DRIVERCONFIG = "org/postgresql/driverconfig.properties"
_JAR_FORMAT = "2"  # part of the cache key: bump when the jar's content layout changes
_WAY_OUT = f"set {CACHE_DIR_VAR} to a private directory (yours, not writable by others)"
#: the cached jar's name: this prefix, 16 lowercase hex digits (its key), ".jar"
_JAR_PREFIX, _JAR_SUFFIX, _HEX = "ua-autotag-pgjdbc-", ".jar", frozenset("0123456789abcdef")


def _is_our_jar(name: str) -> bool:
    """Whether ``name`` is a jar file name of ours (no ``re``: the launcher loads this)."""
    if not (name.startswith(_JAR_PREFIX) and name.endswith(_JAR_SUFFIX)):
        return False
    key = name[len(_JAR_PREFIX) : -len(_JAR_SUFFIX)]
    return len(key) == 16 and set(key) <= _HEX


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
    return _is_our_jar(os.path.basename(option[len("-Xbootclasspath/a:") :]))


def cache_dir(env: Mapping[str, str]) -> str:
    """Where the jar is cached: ``UA_AUTOTAG_CACHE_DIR``, XDG, or ``~/.cache``."""
    explicit = env.get(CACHE_DIR_VAR, "").strip()
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


_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _read_jar(directory_fd: int, path: str, expected: bytes) -> Optional[os.stat_result]:
    """The stat of the jar at ``path`` (opened in ``directory_fd``, never through a link)
    if it is ours: a regular file nobody else can write, exactly ``expected``; None if it
    is missing or holds anything else (rebuild). A link there raises ``Untrusted``."""
    try:
        fd = os.open(os.path.basename(path), _READ, dir_fd=directory_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
            raise trust.Untrusted(f"{path} is a symbolic link (not followed)") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or trust.private(path, st, "file"):
            return None  # a FIFO, a device, a file someone else may write: replaced
        return st if os.read(fd, len(expected) + 1) == expected else None
    finally:
        os.close(fd)


def _cache_directory(directory: str) -> os.stat_result:
    """Check ``directory`` (created private, 0700, where missing) may hold the jar."""
    missing = []
    probe = os.path.abspath(directory)
    while not os.path.lexists(probe) and os.path.dirname(probe) != probe:
        missing.append(probe)
        probe = os.path.dirname(probe)
    if missing:
        trust.check(probe, "above")  # before anything is created below it
        for path in reversed(missing):
            os.makedirs(path, 0o700, exist_ok=True)
    return trust.check(directory, "dir")


def ensure_jar(value: str, directory: str) -> str:
    """The cached jar for ``value``, (re)built atomically unless a valid one is there.

    ``directory`` must pass :func:`ua_autotag.runtimes.trust.check` (created private
    where missing), or :class:`~ua_autotag.runtimes.trust.Untrusted` is raised. The jar
    is opened relative to that directory, never through a symbolic link (one at its
    name raises ``Untrusted``), and checked on every reuse and right after every write
    (exactly the bytes we build, nobody else can write it): what is returned is the
    file just verified. Raises ``OSError``.
    """
    expected = jar_bytes(driverconfig(value))
    path = jar_path(value, directory)
    checked = _cache_directory(directory)
    directory_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        opened = os.fstat(directory_fd)
        if (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino):
            raise trust.Untrusted(f"directory {directory} changed while it was checked")
        if _read_jar(directory_fd, path, expected) is not None:
            return path
        _write_jar(directory_fd, os.path.basename(path), expected)
        # verified again as it is now (a launch running at the same moment may have put
        # its own, identical and as checked, in its place: that one is fine too)
        if _read_jar(directory_fd, path, expected) is None:
            raise OSError(f"the jar written to {path} does not read back")
        return path
    finally:
        os.close(directory_fd)


def _write_jar(directory_fd: int, name: str, content: bytes) -> None:
    """Write ``content`` to a new file in ``directory_fd`` and rename it to ``name``."""
    tmp = f".ua-autotag-{os.getpid()}-{os.urandom(6).hex()}.tmp"
    fd = os.open(tmp, _CREATE, 0o644, dir_fd=directory_fd)
    try:
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=directory_fd, dst_dir_fd=directory_fd)
    except BaseException:
        try:  # noqa: SIM105 - contextlib costs the launcher ~0.7 ms
            os.unlink(tmp, dir_fd=directory_fd)
        except OSError:
            pass
        raise


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
    except trust.Untrusted as exc:
        return f"{exc}: not handed to the JVM; {_WAY_OUT}"
    except OSError as exc:
        from ..cli.common import one_line

        reason = one_line(exc.strerror or str(exc))
        return (
            f"cache directory {directory} is not writable ({reason}); "
            f"set {CACHE_DIR_VAR} to a writable directory"
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


def _verdict(directory: str, jar: str, expected: bytes) -> tuple[bool, Optional[str]]:
    """(a valid jar is there, why the hook would be skipped) as ``hook`` would decide,
    without creating or writing anything."""
    probe = os.path.abspath(directory)
    while not os.path.lexists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    exists = probe == os.path.abspath(directory)
    ready = False
    try:
        trust.check(probe, "dir" if exists else "above")
        if exists:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                ready = _read_jar(fd, jar, expected) is not None
            finally:
                os.close(fd)
    except trust.Untrusted as exc:
        return False, f"{exc}: not handed to the JVM; {_WAY_OUT}"
    except OSError as exc:
        return False, f"cache directory {directory} not usable ({exc.strerror or exc})"
    if not ready and not os.access(probe, os.W_OK | os.X_OK):
        return False, f"cache directory {directory} not usable ({probe} is not writable)"
    return ready, None


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
        row["jar"], row["fragment"] = jar, java_fragment(jar)
        row["jar_ready"], row["reason"] = _verdict(directory, jar, jar_bytes(driverconfig(value)))
        if row["fragment"] is None:
            row["reason"] = f"the cache path {jar} cannot be put in JAVA_TOOL_OPTIONS"
        if row["reason"] is None:
            row["trusted"] = f"{directory}: owner and modes checked up to /"
    return row
