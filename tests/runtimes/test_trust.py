"""The launcher never hands a child a file from a place others can write.

Every hook checks its file's path as OpenSSH's StrictModes does
(``ua_autotag.runtimes.trust``) before the child gets it: the Java jar's cache, the
Node.js preload, the ``sitecustomize`` directory. Hostile places get the hook skipped
with one warning (path, reason, way out), the child still starts, and nothing is
written outside the cache. The real launcher, the real JVM with pgjdbc against
PostgreSQL, real node and Python children. Runs as root (CI does): a directory owned
by ``nobody`` is another user's.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

import ua_autotag
from tests.cli.conftest import SCRIPT
from tests.runtimes.apps import DRIVER_DEFAULT, java_command, java_env, run, run_app
from tests.runtimes.conftest import TIMEOUT, UA, base_env, need
from ua_autotag.runtimes import describe, trust
from ua_autotag.runtimes.java import driverconfig, ensure_jar, jar_bytes, jar_path

WARNING = "ua-autotag run: warning: "
WAY_OUT = "set UA_AUTOTAG_CACHE_DIR to a private directory"
ATTACKER = "Evil_Attacker/6.6"
NOBODY = 65534


def nobody_owns(*paths: Path) -> None:
    need(os.geteuid() == 0, "root (to give a directory to another user)")
    for path in paths:
        os.lchown(path, NOBODY, NOBODY)


def planted(directory: Path) -> Path:
    """An attacker's jar (its own ApplicationName) under our jar's predictable name."""
    jar = Path(jar_path(UA, str(directory)))
    jar.write_bytes(jar_bytes(driverconfig(ATTACKER)))
    return jar


def world_writable(tmp: Path) -> tuple[Path, Path, str]:
    cache = tmp / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    nobody_owns(planted(cache))
    return cache, cache, f"directory {cache} is writable by others"


def sticky(tmp: Path) -> tuple[Path, Path, str]:
    cache = tmp / "cache"
    cache.mkdir()
    cache.chmod(0o1777)  # like /tmp: others cannot remove our files, but can add theirs
    nobody_owns(planted(cache))
    return cache, cache, f"directory {cache} is writable by others (sticky"


def other_users(tmp: Path) -> tuple[Path, Path, str]:
    cache = tmp / "cache"
    cache.mkdir(mode=0o755)
    nobody_owns(cache, planted(cache))
    return cache, cache, f"directory {cache} is owned by nobody, not by you or root"


def symlink_at_the_name(tmp: Path) -> tuple[Path, Path, str]:
    cache = tmp / "cache"
    cache.mkdir(mode=0o700)
    outside = tmp / "outside"
    outside.mkdir()
    evil = planted(outside)
    link = Path(jar_path(UA, str(cache)))
    link.symlink_to(evil)
    return cache, outside, f"{link} is a symbolic link (not followed)"


def under_a_world_writable_parent(tmp: Path) -> tuple[Path, Path, str]:
    parent = tmp / "shared"
    parent.mkdir()
    parent.chmod(0o777)
    return parent / "cache", parent, f"directory {parent} is writable by others:"


def snapshot(directory: Path) -> dict[str, tuple[int, int, bytes]]:
    """What is in ``directory``: name -> (mode, owner, content) (links: their target)."""
    out = {}
    for entry in sorted(directory.iterdir()):
        st = entry.lstat()
        data = os.readlink(entry).encode() if entry.is_symlink() else entry.read_bytes()
        out[entry.name] = (st.st_mode, st.st_uid, data)
    return out


@pytest.mark.parametrize(
    "hostile",
    [world_writable, sticky, other_users, symlink_at_the_name, under_a_world_writable_parent],
)
def test_a_hostile_cache_skips_the_java_hook_and_the_jvm_still_starts(
    java_app: Path, jdbc_url: str, tmp_path: Path, hostile: Callable[[Path], tuple[Path, Path, str]]
) -> None:
    cache, watched, reason = hostile(tmp_path)
    before = snapshot(watched)
    env = base_env(UA_AUTOTAG_CACHE_DIR=str(cache))
    launcher = [SCRIPT, "run", "--user-agent", UA, "--"]
    proc = run([*launcher, *java_command(java_app, "driver", jdbc_url, "-")], java_env(env))
    values = dict(ln.split("=", 1) for ln in proc.stdout.splitlines() if "=" in ln)
    # the JVM started, and pgjdbc got neither our jar nor the planted one
    assert values["application_name"] == DRIVER_DEFAULT, proc.stdout
    (line,) = proc.stderr.splitlines()  # one warning, and nothing else
    assert line.startswith(f"{WARNING}java hook skipped: {reason}"), line
    assert line.endswith(f"not handed to the JVM; {WAY_OUT} (yours, not writable by others)")
    assert snapshot(watched) == before, "something was written where others can write"
    # doctor says the same
    (java,) = (r for r in describe(env, ["node"], value=UA) if r["runtime"] == "java")
    assert not java["would_add"]
    assert line == f"{WARNING}java hook skipped: {java['reason']}"


def test_a_private_cache_is_created_0700_and_tags_pgjdbc(
    java_app: Path, jdbc_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "sticky"
    root.mkdir()
    root.chmod(0o1777)  # a private directory under a /tmp-like one is fine
    cache = root / "mine" / "ua-autotag"
    env = base_env(UA_AUTOTAG_CACHE_DIR=str(cache))
    launcher = [SCRIPT, "run", "--user-agent", UA, "--"]
    values = run_app(java_app, env, "driver", jdbc_url, "-", launcher=launcher)
    assert values["application_name"] == UA
    for created in (root / "mine", cache):
        assert stat.S_IMODE(created.stat().st_mode) == 0o700, created
    (jar,) = cache.iterdir()
    assert jar.stat().st_mode & 0o022 == 0 and jar.stat().st_uid == os.geteuid()
    assert jar.read_bytes() == jar_bytes(driverconfig(UA))


# -- the node preload and the sitecustomize directory ---------------------------------------
def _copy_of_the_package(tmp_path: Path) -> Path:
    """ua_autotag copied into a folder importable with PYTHONPATH (a private one)."""
    root = tmp_path / "site"
    shutil.copytree(Path(ua_autotag.__file__).parent, root / "ua_autotag")
    return root


def _launch(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = base_env(PYTHONPATH=str(root), UA_AUTOTAG_CACHE_DIR=str(root.parent / "jar-cache"))
    launcher = [sys.executable, "-m", "ua_autotag", "run", "--user-agent", UA, "--"]
    return subprocess.run(
        [*launcher, *command], env=env, capture_output=True, text=True, timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_a_preload_others_can_write_is_not_handed_to_node(tmp_path: Path, node: str) -> None:
    root = _copy_of_the_package(tmp_path)
    folder = root / "ua_autotag" / "runtimes" / "node"
    folder.chmod(0o777)
    proc = _launch(root, node, "-e", "console.log(process.env.NODE_OPTIONS || 'none')")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "none"  # node started, without our --require
    (line,) = proc.stderr.splitlines()
    reason = (
        f"directory {folder} is writable by others: not handed to node; reinstall "
        "ua-autotag where only you or root can write"
    )
    assert line == f"{WARNING}node hook skipped: {reason}"
    doctor = subprocess.run(
        [sys.executable, "-m", "ua_autotag", "doctor", "--user-agent", UA],
        env=base_env(PYTHONPATH=str(root)), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert f"not added ({reason})" in doctor.stdout, doctor.stdout


@pytest.mark.parametrize("where", ["bootstrap", "bootstrap/__pycache__"])
def test_a_sitecustomize_others_can_write_is_not_put_on_pythonpath(
    tmp_path: Path, where: str
) -> None:
    root = _copy_of_the_package(tmp_path)
    folder = root / "ua_autotag" / where
    folder.mkdir(exist_ok=True)
    folder.chmod(0o777)
    code = "import os, sys; print('ua_autotag' in sys.modules, os.environ['PYTHONPATH'])"
    proc = _launch(root, sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", str(root)]  # ran, PYTHONPATH left as it was
    (line,) = proc.stderr.splitlines()
    assert line.startswith(
        f"{WARNING}python hook skipped: directory {folder} is writable by others: not put on "
        "PYTHONPATH"
    ), line
    doctor = subprocess.run(
        [sys.executable, "-m", "ua_autotag", "doctor", "--user-agent", UA],
        env=base_env(PYTHONPATH=str(root)), capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert f"(not put on PYTHONPATH: directory {folder} is writable by others" in doctor.stdout


# -- the rule itself ------------------------------------------------------------------------
def test_the_rule_for_each_place(tmp_path: Path) -> None:
    def verdict(path: Path, kind: str = "file") -> str:
        return trust.verdict(str(path), kind) or "ok"

    nobody_owns()  # as root only: other users' entries are made with chown

    shared = tmp_path / "shared"  # a /tmp-like sticky directory
    shared.mkdir()
    shared.chmod(0o1777)
    mine = shared / "mine"
    mine.mkdir(mode=0o700)
    (mine / "f").write_text("x")
    assert verdict(mine / "f") == "ok"  # a private directory under a sticky one
    assert verdict(mine, "dir") == "ok"
    assert verdict(shared, "dir").startswith(f"directory {shared} is writable by others")

    team = tmp_path / "team"  # group-writable: fine above, not to hold the file
    (team / "private").mkdir(parents=True, mode=0o700)
    team.chmod(0o775)
    os.chown(team, -1, NOBODY)  # nogroup: not the owner's private group
    (team / "private" / "f").write_text("x")
    (team / "f").write_text("x")
    assert verdict(team / "private" / "f") == "ok"
    assert verdict(team / "f") == f"directory {team} is writable by its group"

    group_file = mine / "g"
    group_file.write_text("x")
    group_file.chmod(0o664)
    assert verdict(group_file) == "ok"  # the group is the owner's private one (root's)
    os.chown(group_file, -1, NOBODY)
    assert verdict(group_file) == f"file {group_file} is writable by its group"

    # links: followed by hand, every directory on the way checked, their owner too
    (mine / "to-shared").symlink_to(shared)
    assert verdict(mine / "to-shared" / "mine" / "f") == "ok"
    (mine / "up").symlink_to("../mine/f")
    assert verdict(mine / "up") == "ok"
    (team / "link").symlink_to(mine / "f")  # a file's name as a link in a group's directory
    assert verdict(team / "link") == f"directory {team} is writable by its group"
    (mine / "theirs").symlink_to(mine / "f")
    nobody_owns(mine / "theirs")
    assert verdict(mine / "theirs") == f"symbolic link {mine / 'theirs'} is owned by nobody"

    other = shared / "other"  # someone else's directory under the sticky one
    other.mkdir(mode=0o755)
    (other / "f").write_text("x")
    nobody_owns(other)
    assert verdict(other / "f") == f"directory {other} is owned by nobody, not by you or root"
    assert verdict(tmp_path / "missing").endswith("cannot be checked (No such file or directory)")


def test_launches_at_the_same_moment_each_get_a_verified_jar(tmp_path: Path) -> None:
    """Launches building the same jar at once (a test suite starting many programs): each
    gets the path, none a spurious failure, one jar and no temporary file left."""
    import threading

    for attempt in range(20):
        directory = tmp_path / f"cache{attempt}"
        results: list[object] = []

        def build(directory: Path = directory, results: list[object] = results) -> None:
            try:
                results.append(ensure_jar(UA, str(directory)))
            except OSError as exc:
                results.append(exc)

        threads = [threading.Thread(target=build) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [jar_path(UA, str(directory))] * 8, results
        assert [p.name for p in directory.iterdir()] == [Path(jar_path(UA, str(directory))).name]
