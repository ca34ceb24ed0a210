"""Whether a file the launcher hands a child sits where only its owner can change it.

The launcher hands children files they run with their full rights: the Java jar on
the boot class path, the Node.js preload, the ``sitecustomize`` directory on
``PYTHONPATH``. Whoever can change one of those between our check and the child's
load (or plant one first) runs code as every program the launcher starts. So, as
OpenSSH's ``StrictModes`` does for ``authorized_keys``, before a hook hands a child a
path, that path is walked from ``/``, every symbolic link followed by hand:

* the file (or the directory whose content the child loads) and the directory holding
  it are owned by the current user or root and not writable by group or others: a
  sticky world-writable directory such as ``/tmp`` does not qualify to hold it;
* every directory above is owned by the user or root and not writable by others,
  except that a sticky one may sit above an entry the user (or root) owns: a private
  directory under ``/tmp`` is fine, since the sticky bit stops others from renaming it;
* a symbolic link on the way is owned by the user or root, and the directories its
  target goes through are held to the same rules.

Group-writable directories above the holding one are accepted, as the issue that
introduced this asked (an ``authorized_keys``-like rule, not a stricter one). "Writable
by group" does not count when the group is the owner's private one (its primary group,
no other member: what a umask of 002 gives on systems with user private groups), as
Debian's OpenSSH allows: nobody else can write there. Running as root, "the user or
root" is root alone: a directory owned by ``nobody`` is refused.
Reads only; stdlib only (``os``, ``stat``): the launcher calls it on every ``run``.
"""

from __future__ import annotations

import errno
import os
import stat

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing: ~4 ms of the launcher's start-up
    from typing import Optional

__all__ = ["MAX_LINKS", "Untrusted", "check", "owned", "private", "verdict"]

#: symbolic links followed on one path before giving up (Linux's own limit is 40)
MAX_LINKS = 40


class Untrusted(OSError):
    """A path the launcher will not hand a child; ``str()`` names the path and why."""


def owned(st: os.stat_result) -> bool:
    """Owned by the current (effective) user or root."""
    return st.st_uid in (0, os.geteuid())


def _owner(st: os.stat_result) -> str:
    try:
        import pwd

        return pwd.getpwuid(st.st_uid).pw_name
    except (ImportError, KeyError):
        return f"uid {st.st_uid}"


def private(path: str, st: os.stat_result, what: str) -> Optional[str]:
    """Why ``st`` (of ``path``) may not hold or be what a child loads, or None."""
    if not owned(st):
        return f"{what} {path} is owned by {_owner(st)}, not by you or root"
    if st.st_mode & stat.S_IWOTH:
        sticky = " (sticky, like /tmp: fine above a private directory, not to hold a file)"
        return f"{what} {path} is writable by others{sticky if stat.S_ISVTX & st.st_mode else ''}"
    if st.st_mode & stat.S_IWGRP and not _private_group(st):
        return f"{what} {path} is writable by its group"
    return None


def _private_group(st: os.stat_result) -> bool:
    """Whether the group of ``st`` is its owner's own: the owner's primary group, with no
    other member (a umask 002 system's "user private group"; as Debian's OpenSSH allows)."""
    try:
        import grp
        import pwd

        owner = pwd.getpwuid(st.st_uid)
        group = grp.getgrgid(st.st_gid)
    except (ImportError, KeyError):
        return False
    return owner.pw_gid == st.st_gid and set(group.gr_mem) <= {owner.pw_name}


def _above(path: str, st: os.stat_result) -> Optional[str]:
    """Why directory ``path`` may not sit above the file's directory, or None."""
    if not owned(st):
        return f"directory {path} is owned by {_owner(st)}, not by you or root"
    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        return f"directory {path} is writable by others"
    return None


def _walk(path: str, file: bool) -> tuple[str, os.stat_result, str, os.stat_result]:
    """Resolve ``path`` by hand, checking each directory on the way against the rule
    for directories above and each link's owner (and, for a ``file`` whose name is a
    link, the link's directory as the file's own); (final entry, its lstat, the
    directory holding it, that directory's stat). Raises ``Untrusted`` / ``OSError``."""
    todo = [p for p in reversed(os.path.abspath(path).split("/")) if p]
    current, current_st = "/", os.stat("/")
    links = 0
    while True:
        problem = _above(current, current_st)
        if problem:
            raise Untrusted(problem)
        name = todo.pop()
        while name == "." and todo:
            name = todo.pop()
        if name == "..":
            current = os.path.dirname(current)
            current_st = os.stat(current)
            if not todo:
                todo.append(".")
            continue
        entry = os.path.join(current, name)
        st = os.lstat(entry)
        if stat.S_ISLNK(st.st_mode):
            if not owned(st):
                raise Untrusted(f"symbolic link {entry} is owned by {_owner(st)}")
            links += 1
            if links > MAX_LINKS:
                raise Untrusted(f"too many symbolic links resolving {path}")
            target = os.readlink(entry)
            if file and not todo and name != ".":
                # the final name is a link: whoever can replace it, changes the file
                problem = private(current, current_st, "directory")
                if problem:
                    raise Untrusted(problem)
            todo.extend(p for p in reversed(target.split("/")) if p)
            if target.startswith("/"):
                current, current_st = "/", os.stat("/")
            if not todo:
                todo.append(".")
            continue
        if not todo:
            return entry, st, current, current_st
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(20, "Not a directory", entry)
        current, current_st = entry, st


def check(path: str, kind: str = "file") -> os.stat_result:
    """The stat of ``path`` if it may be handed to a child, else raise :class:`Untrusted`.

    ``kind`` ``"file"``: a regular file a child loads (it and the directory holding it
    follow the rule for what a child loads); ``"dir"``: a directory holding such files
    (the jar's cache, the ``sitecustomize`` directory), which follows that rule itself;
    ``"above"``: a directory that may sit above one (where the cache directory is to be
    created). An entry that cannot be read, or is not of that kind, raises ``OSError``.
    """
    entry, st, holder, holder_st = _walk(path, kind == "file")
    if kind == "above":
        problem = _above(entry, st)
    elif kind == "file":
        problem = private(holder, holder_st, "directory") or private(entry, st, "file")
    else:
        problem = private(entry, st, "directory")
    if problem:
        raise Untrusted(problem)
    want, name = (stat.S_ISREG, "regular file") if kind == "file" else (stat.S_ISDIR, "directory")
    if not want(st.st_mode):  # not a trust matter: the caller says it cannot use it
        raise OSError(errno.EINVAL if kind == "file" else errno.ENOTDIR, f"not a {name}", entry)
    return st


def verdict(path: str, kind: str = "file") -> Optional[str]:
    """:func:`check` as a reason (None: trusted), for ``doctor`` and warnings."""
    try:
        check(path, kind)
    except Untrusted as exc:
        return str(exc)
    except OSError as exc:
        return f"{path} cannot be checked ({exc.strerror or exc})"
    return None
