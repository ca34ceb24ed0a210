"""The connection report: every connection to a Databricks or PostgreSQL endpoint the
process opened, tagged or not, and where the untagged ones came from.

Two sources, both off until :func:`enable` (``ua_autotag.report()``, or
``UA_AUTOTAG_REPORT`` set by ``ua-autotag run --report``):

* **tagged** connections come from the engine. While the report is on, every tagging
  layer opens a connect handle (:mod:`.telemetry`, the span path: with no SDK no span is
  made) and :func:`record` receives it when the call ends: integration, product, the
  value, and the target the integration noted.
* **untagged** connections come from Python's audit hooks ``socket.getaddrinfo`` /
  ``socket.connect``: a socket opened outside any tagging layer whose host matches the
  Databricks host rule (:mod:`.hosts`) or whose endpoint is a PostgreSQL one (port 5432,
  ``PGPORT``, a Unix socket ``.s.PGSQL.*``, or a host:port a PostgreSQL integration
  connected to) is listed with the code location (``file:line``) that opened it. A socket
  opened *inside* a REST layer is the evidence that layer's call opened a connection (a
  request on a kept-alive connection opens none and is not listed); a REST layer that
  notes its target claims the socket its thread opened to it just before (aiohttp's
  connector connects before ``ClientRequest.send`` runs).

Native clients (libpq, connectorx, gRPC, ODBC, the JVM) open their sockets outside Python: they are
seen only through their integrations. ``sys.addaudithook`` cannot be undone, so one hook
is installed, at the first :func:`enable`, and :func:`disable` turns it into a flag
check. Nothing here keeps a URL, DSN or header: only host names, ports, values and code
locations, and every rendered report is scrubbed once more.
"""

from __future__ import annotations

import os
import sys
from _thread import get_ident
from typing import TYPE_CHECKING, Any, Dict, Generator, List, Optional, Set, Tuple

if TYPE_CHECKING:
    from .telemetry import ConnectSpan

__all__ = [
    "Report",
    "disable",
    "enable",
    "merged",
    "print_at_exit",
    "record",
    "reset",
    "state_changed",
]

#: carriers whose layer runs on every request: a row needs a socket opened inside it
_REST_CARRIERS = ("http-user-agent",)
#: the note printed under every report
NATIVE_NOTE = (
    "clients that connect outside Python's sockets (libpq: psycopg, psycopg2, ADBC; "
    "Rust: connectorx; gRPC: Spark Connect; ODBC: pyodbc; the JVM: jaydebeapi) are "
    "listed through their integrations only; Node.js and Java child processes are not "
    "listed"
)
_PG_PORTS = {5432}
_thread_ident = get_ident
_modules = sys.modules
_ON = False
_INSTALLED = False
_rows: Dict[Tuple[Any, ...], int] = {}
#: host -> the ports a PostgreSQL integration connected to there (no tuple per look-up)
_pg_endpoints: Dict[Any, Set[Optional[int]]] = {}
#: thread ident -> (port, name) this thread looked up last (the connect that follows),
#: kept only while more than one thread runs
_lookups: Dict[int, Tuple[Any, Any]] = {}
#: the running threads (``threading._active``, bound by enable()); a process with one
#: thread needs no per-thread look-ups. Without it: always per thread.
_threads: Any = (None, None)
#: port -> the name looked up last by any thread (asyncio resolves in an executor thread)
_last_lookup: Dict[Any, Any] = {}
_rules: Any = None  # the host rule, built at first need; None again when state_changed()
_REPORT: Optional[Report] = None
# frames of these modules (and of the standard library) are not "the code that opened it"
_SKIP_PREFIXES = ("ua_autotag", "wrapt")


def _stdlib_dirs() -> Tuple[str, ...]:
    import sysconfig

    paths = sysconfig.get_paths()
    dirs = {os.path.normcase(os.path.abspath(paths[k])) for k in ("stdlib", "platstdlib")}
    return tuple(sorted(d + os.sep for d in dirs))


_STDLIB: Tuple[str, ...] = ()


def _port(value: Any) -> Optional[int]:
    if type(value) is int:
        return value
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def _audit(event: str, args: Tuple[Any, ...]) -> None:
    # Every audited event of the process comes here (``open``, ``import``, every frame
    # attribute read ...): two length-first string compares for all but ours. The two
    # socket events are one function each way, as few operations as can be: right after
    # a connect system call every one of them costs several times its usual price.
    if event == "socket.connect":
        if not _ON:
            return
        try:
            address = args[1]
            if type(address) is tuple:  # (ip, port), IPv6: (ip, port, flow, scope)
                port = address[1]
                # the name this thread just looked up for that port; else the last one
                # looked up anywhere (asyncio resolves in an executor thread); else the IP
                if _lookups:  # more than one thread ran look-ups (see below)
                    lookup = _lookups.get(_thread_ident())
                    if lookup is not None and lookup[0] == port and len(_threads) > 1:
                        host = lookup[1]
                    else:
                        host = _last_lookup.get(port) or address[0]
                        if len(_threads) <= 1:  # the other threads ended: none current
                            _lookups.clear()
                else:
                    host = _last_lookup.get(port) or address[0]
                if port in _PG_PORTS or (
                    _pg_endpoints
                    and (
                        port in _pg_endpoints.get(host, ())
                        or port in _pg_endpoints.get(address[0], ())
                    )
                ):
                    kind = "postgresql"
                else:
                    hit = _verdicts.get(host)  # emptied whenever the host rule changes
                    if hit is None:
                        if type(host) is not str:  # a bytes address: a str from here on
                            host, port = _normal(host, port)
                        hit = _verdict(host)
                    if not hit:
                        return
                    kind = "databricks"
                if type(port) is not int or type(host) is not str:  # int-likes, bytes
                    host, port = _normal(host, port)
            elif isinstance(address, str):  # AF_UNIX: PostgreSQL's is <dir>/.s.PGSQL.<port>
                name = os.path.basename(address)
                if not name.startswith(".s.PGSQL."):
                    return
                host, port, kind = os.path.dirname(address), _port(name[9:]), "postgresql"
            else:
                return
            handle = _current_handle()
            if handle is not None:  # inside a tagging layer: that layer's connection
                sockets = handle.sockets
                if sockets:
                    sockets.append((kind, host, port))
                else:  # a report-only handle holds no list until now
                    handle.sockets = [(kind, host, port)]
            else:  # the code that called connect: the frame past this one
                try:
                    frame = next(_CALLERS).f_back
                except ValueError:  # another thread is inside the generator
                    frame = sys._getframe(1)
                _untagged(kind, host, port, frame)
        except Exception:  # never break the caller's connect
            pass
    elif event == "socket.getaddrinfo" and _ON:
        try:
            # (host: str, bytes or None: the connect makes it a str; a None one is skipped)
            host, port = args[0], args[1]
            if type(port) is not int:  # "443" here, 443 at connect
                port = _port(port)
            _last_lookup[port] = host
            if len(_threads) > 1:  # one thread: the last look-up is this thread's
                if len(_lookups) > 4096:  # idents of threads long gone
                    _lookups.clear()
                _lookups[_thread_ident()] = (port, host)
        except Exception:
            pass


def _normal(host: Any, port: Any) -> Tuple[str, Optional[int]]:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    return str(host), _port(port)


def _state() -> Any:
    attribution = sys.modules.get("ua_autotag.engine.attribution")
    return attribution.state() if attribution is not None else None


def _state_lookup() -> Any:
    """:func:`_state` until the attribution module is loaded, then its own ``state``."""
    global _state_now
    attribution = _modules.get("ua_autotag.engine.attribution")
    if attribution is None:
        return None
    _state_now = attribution.state
    return _state_now()


_state_now: Any = _state_lookup  # the attribution state in force (one call)


def _no_handle() -> Any:
    return None


_current_handle: Any = _no_handle  # telemetry's ContextVar getter, bound by enable()


def state_changed() -> None:
    """The attribution snapshot changed (the engine calls this; nothing per connection
    asks): the host rule is rebuilt from it at the next look-up, every verdict with it."""
    global _rules
    _rules = None
    _verdicts.clear()


def _host_rules() -> Any:
    """The Databricks host rule of everything registered (the default's and every
    product's ``rest_hosts``), else the environment's; rebuilt after a change of the
    registered settings (:func:`state_changed`)."""
    global _rules
    if _rules is not None:
        return _rules
    state = _state()
    from .hosts import HostRules
    from .options import VAR

    listed: List[str] = []
    if state is not None:
        for settings in state.every():
            listed.extend(settings.rest_hosts)
    else:
        listed = [h for h in os.environ.get(VAR["rest_hosts"], "").split(",") if h]
    rules = HostRules.build(listed, os.environ.get("DATABRICKS_HOST"))
    _verdicts.clear()
    _rules = rules
    return rules


#: host name -> whether it is a Databricks host under :data:`_rules` (cleared with it)
_verdicts: Dict[str, bool] = {}


def _verdict(host: str) -> bool:
    if len(_verdicts) > 4096:
        _verdicts.clear()
    hit = _verdicts[host] = bool(_host_rules().match(host))
    return hit


def _current_settings() -> Any:
    attribution = sys.modules.get("ua_autotag.engine.attribution")
    if attribution is None:
        return None
    try:
        return attribution.current()
    except Exception:
        return None


def _callers() -> Generator[Any, None, None]:
    """Yields the frame that called ``next()`` on it.

    ``sys._getframe`` and ``frame.f_code`` are audited events (this very hook runs for
    each, ~0.4 us apiece); a generator's own frame, taken once, is not: while it runs,
    its ``f_back`` is the caller's frame, and ``f_back`` is not audited."""
    while True:
        yield _OWN_FRAME.f_back


_CALLERS: Any = _callers()
_OWN_FRAME: Any = _CALLERS.gi_frame  # one audited read, at import (no hook of ours yet)


#: module name -> what its frames are: "" skip (ours, socket, wrapt), "=" the caller's
#: code, else the client to name: the top-level package of an installed library, or the
#: standard-library module itself
_MODULES: Dict[Any, str] = {}


def _module_kind(name: Any, globals_: Dict[str, Any]) -> str:
    global _STDLIB
    if not _STDLIB:
        _STDLIB = _stdlib_dirs()
    module = name if isinstance(name, str) else ""
    norm = os.path.normcase(str(globals_.get("__file__") or ""))
    if module.startswith(_SKIP_PREFIXES) or module == "socket":
        kind = ""
    elif "site-packages" in norm or "dist-packages" in norm:
        kind = module.split(".")[0] or "?"
    elif norm and norm.startswith(_STDLIB):
        kind = module or "?"
    else:
        kind = "="
    if len(_MODULES) > 4096:
        _MODULES.clear()
    _MODULES[name] = kind
    return kind


#: (module, line, bytecode offset) of a caller's frame -> its (file, line): two code
#: objects of one module at the same line and offset (source exec'd into a module's
#: namespace) are the only ones told apart by their file alone
_PLACES: Dict[Tuple[Any, int, int], Tuple[str, int]] = {}


def _place(frame: Any, name: Any) -> Tuple[str, int]:
    line = frame.f_lineno
    key = (name, line, frame.f_lasti)
    place = _PLACES.get(key)
    if place is None:
        if len(_PLACES) > 4096:
            _PLACES.clear()
        place = _PLACES[key] = (frame.f_code.co_filename, line)
    return place


_LABELS: Dict[int, Tuple[Any, str]] = {}
#: [state, label]: the label of a state whose default is its only settings (kept alive:
#: a snapshot holds nothing of the application's)
_SOLE: List[Any] = [None, "-"]


def _label(settings: Any) -> str:
    """``settings.label``, kept per settings object (it is computed on each read)."""
    known = _LABELS.get(id(settings))
    if known is not None and known[0] is settings:
        return known[1]
    if len(_LABELS) > 64:
        _LABELS.clear()
    label: str = settings.label
    _LABELS[id(settings)] = (settings, label)
    return label


def _untagged(kind: str, host: str, port: Optional[int], frame: Any) -> None:
    """A socket opened outside every tagging layer, by the code of ``frame``: its row."""
    # from ``frame`` outwards: the outermost library (or standard-library module) of the
    # calls that opened the socket, and the first frame past it: the caller's code.
    # Frames are told apart by their module (``f_globals``, not audited); the caller's
    # file (``f_code``, audited) is read once per place.
    client: Any = ""
    location: Any = "?"
    while frame is not None:
        globals_ = frame.f_globals
        name = globals_.get("__name__")
        what = _MODULES.get(name)
        if what is None:
            what = _module_kind(name, globals_)
        if what == "=":
            line = frame.f_lineno
            location = _PLACES.get((name, line, frame.f_lasti)) or _place(frame, name)
            break
        if what:
            client = what
        frame = frame.f_back
    client = client or "?"
    state = _state_now()
    if state is None:
        product = "-"
    elif state is _SOLE[0]:
        product = _SOLE[1]
    elif not state.products and state.default is not None:
        product = _label(state.default)  # no walk needed: the default is the only one
        _SOLE[:] = [state, product]
    else:
        settings = _current_settings()
        product = settings.label if settings is not None else "-"
    key = ("untagged", client, product, kind, host, port, None, location)
    try:
        _rows[key] += 1
    except KeyError:
        _rows[key] = 1
    if kind == "databricks" and (_CLAIMERS[0] in _modules or _CLAIMERS[1] in _modules):
        # a REST layer of this thread may still claim it: aiohttp opens the connection
        # before the layer that tags the request on it runs (``ClientRequest.send``);
        # none can while no client whose layer notes its target is imported
        if len(_pending) > 256:
            _pending.clear()
        _pending[(_thread_ident(), host, port)] = key


#: the clients whose REST layer notes its target (so may claim a socket opened before it)
_CLAIMERS = ("aiohttp", "databricks.sdk")
#: (thread, host, port) -> the untagged row of a socket a REST layer may claim
_pending: Dict[Tuple[Any, Optional[str], Optional[int]], Tuple[Any, ...]] = {}


def _claim(host: Optional[str], port: Optional[int]) -> Optional[Tuple[Any, ...]]:
    """The untagged row of the socket this thread just opened to host:port, taken off."""
    key = _pending.pop((_thread_ident(), host, port), None)
    if key is None:
        return None
    count = _rows.get(key, 0)
    if count <= 1:
        _rows.pop(key, None)
    else:
        _rows[key] = count - 1
    return key


def record(handle: ConnectSpan, exc: Optional[BaseException]) -> None:
    """A tagging layer's call ended (called by the telemetry handle, report on only)."""
    # (handed over only while the report is on: :func:`disable` takes it back)
    value = handle.sent or handle.value
    if value is None:
        return  # nothing was tagged (tagging failed or the layer does not tag)
    integration = handle.integration
    rest = _REST.get(integration)
    if rest is None:
        rest = _is_rest(integration)
    if rest:
        # no socket opened inside: a kept-alive connection, or not a Databricks host, or
        # (a layer that notes its target) one opened just before: claimed from _pending
        sockets = handle.sockets
        if not sockets:
            if not _pending or not handle.address:
                return  # the usual request: on a kept-alive connection, no row
            host = _HOSTS.get(handle.address) or _host_of(handle.address)
            if _claim(host, handle.port) is None:
                return
            sockets = [("databricks", host, handle.port)]
        outcome = "tagged" if exc is None else "tagged (connect failed)"
        for kind, host, port in dict.fromkeys(sockets):
            key = (outcome, integration, handle.product, kind, host, port, value, None)
            _rows[key] = _rows.get(key, 0) + 1
        return
    # what the handle noted, counted as it is (one tuple, one look-up); made into its row
    # (host name, PostgreSQL endpoint noted) once, when first seen
    noted = (integration, handle.product, handle.system, handle.address, handle.port, value,
             exc is None)  # fmt: skip
    count = _tagged.get(noted)
    if count is None:
        count = _tagged[noted] = [0, _noted(noted)]
    count[0] += 1


#: what a tagging layer's handle noted (integration, product, system, address, port,
#: value, succeeded) -> [connections, its row's key]
_tagged: Dict[Tuple[Any, ...], List[Any]] = {}


def _noted(noted: Tuple[Any, ...]) -> Tuple[Any, ...]:
    """The row of what a handle noted (first seen): its host name; a PostgreSQL one's
    endpoint is kept for the audit hook (the same server's Python sockets)."""
    integration, product, system, address, port, value, ok = noted
    host = (_HOSTS.get(address) or _host_of(address) or "?") if address else "?"
    if system == "postgresql":
        kind = "postgresql"
        if port is not None:  # its sockets, if Python's, are PostgreSQL ones
            _pg_endpoints.setdefault(host, set()).add(port)
    else:
        kind = "databricks"
    outcome = "tagged" if ok else "tagged (connect failed)"
    return (outcome, integration, product, kind, host, port, value, None)


#: integration -> whether its carrier is a REST one, whose layer runs on every request
_REST: Dict[str, bool] = {}
_HOSTS: Dict[str, Optional[str]] = {}


def _is_rest(integration: str) -> bool:
    """Whether the integration's layer runs per request (kept per integration)."""
    from .catalog import CATALOG

    entry = CATALOG.get(integration)
    rest = _REST[integration] = entry is not None and entry.carrier in _REST_CARRIERS
    return rest


def _host_of(address: str) -> Optional[str]:
    from .hosts import host_of

    if len(_HOSTS) > 1024:
        _HOSTS.clear()
    host = _HOSTS[address] = host_of(address)
    return host


_FIELDS = ("status", "client", "product", "endpoint_kind", "host", "port", "value", "location")


class Report:
    """The report of this process so far: counts for a test suite, text or JSON to print.

    ``report.untagged`` is the number of connections opened outside every integration
    (``assert ua_autotag.report().untagged == 0`` in a partner's test suite).
    """

    def __init__(self, rows: Optional[List[Dict[str, Any]]] = None) -> None:
        self._fixed = rows  # rows merged from child processes (the launcher)

    def rows(self) -> List[Dict[str, Any]]:
        """One dict per group (status, client, product, endpoint, value, location), with
        its ``count``."""
        if self._fixed is not None:
            return list(self._fixed)
        out = []
        groups: Dict[Tuple[Any, ...], int] = {}
        counted = list(_rows.items()) + [(row, n) for n, row in list(_tagged.values())]
        for key, count in counted:
            location = key[-1]
            if type(location) is tuple:  # (file, line): formatted here, not per connection
                key = (*key[:-1], f"{location[0]}:{location[1]}")
            groups[key] = groups.get(key, 0) + count
        for key, count in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
            row = dict(zip(_FIELDS, key))
            row["count"] = count
            out.append(row)
        return out

    @property
    def tagged(self) -> int:
        return sum(r["count"] for r in self.rows() if r["status"].startswith("tagged"))

    @property
    def untagged(self) -> int:
        return sum(r["count"] for r in self.rows() if r["status"] == "untagged")

    def as_dict(self) -> Dict[str, Any]:
        return {
            "tagged": self.tagged,
            "untagged": self.untagged,
            "connections": self.rows(),
            "note": NATIVE_NOTE,
        }

    def json(self) -> str:
        import json

        from .scrub import scrub

        return scrub(json.dumps(self.as_dict(), indent=2, sort_keys=True))

    def text(self) -> str:
        from .scrub import scrub

        rows = self.rows()
        lines = [
            f"ua-autotag report: {self.tagged + self.untagged} connection(s) to Databricks / "
            f"PostgreSQL endpoints, {self.tagged} tagged, {self.untagged} untagged"
        ]
        for status in ("tagged", "tagged (connect failed)", "untagged"):
            group = [r for r in rows if r["status"] == status]
            if not group:
                continue
            lines.append(f"  {status}:")
            for r in group:
                endpoint = f"{r['host']}:{r['port']}" if r["port"] is not None else r["host"]
                what = f"value {r['value']!r}" if r["value"] else f"opened at {r['location']}"
                lines.append(
                    f"    {r['client']:<16} {r['product']:<28} {r['endpoint_kind']:<10} "
                    f"{endpoint:<32} x{r['count']:<3} {what}"
                )
        lines.append(f"  note: {NATIVE_NOTE}")
        return scrub("\n".join(lines)) + "\n"

    def stop(self) -> None:
        """Stop recording (the audit hook stays installed, as a flag check)."""
        disable()


def is_on() -> bool:
    """Whether the report is recording."""
    return _ON


def report_so_far() -> Report:
    """The report being recorded (an empty one when none was ever enabled)."""
    return _REPORT or Report()


def enable() -> Report:
    """Turn recording on (idempotent); the first call installs the one audit hook."""
    global _ON, _INSTALLED, _REPORT, _current_handle, _threads
    import threading

    # private but long stable (ident -> Thread); threads started with _thread directly
    # are not in it (their look-ups then share the last-look-up table)
    active = getattr(threading, "_active", None)
    if isinstance(active, dict):
        _threads = active
    from . import telemetry

    _current_handle = telemetry.current
    pg_port = _port(os.environ.get("PGPORT"))
    if pg_port is not None:
        _PG_PORTS.add(pg_port)
    telemetry.set_ledger(record)
    _ON = True
    wrapper = sys.modules.get("ua_autotag.engine.wrapper")  # else it reads _ON at import
    if wrapper is not None:
        wrapper.set_reporting(True)
    if not _INSTALLED:
        sys.addaudithook(_audit)
        # a forked child reports its own connections, not a copy of its parent's
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=reset)
        _INSTALLED = True
    if _REPORT is None:
        _REPORT = Report()
    return _REPORT


def disable() -> None:
    """Stop recording: the engine back on its usual path, the audit hook a flag check."""
    global _ON
    _ON = False
    telemetry = sys.modules.get("ua_autotag.telemetry")
    if telemetry is not None:
        telemetry.set_ledger(None)
    wrapper = sys.modules.get("ua_autotag.engine.wrapper")
    if wrapper is not None:
        wrapper.set_reporting(False)


def reset() -> None:
    """Forget what was recorded (tests)."""
    _rows.clear()
    _tagged.clear()
    _pending.clear()
    _pg_endpoints.clear()
    _lookups.clear()
    _last_lookup.clear()


# -- at exit --------------------------------------------------------------------------
_AT_EXIT: List[Tuple[str, Optional[str], Optional[str]]] = []


def print_at_exit(fmt: str, path: Optional[str] = None, directory: Optional[str] = None) -> None:
    """Print the report when the process ends: on stderr, to ``path``, or (the launcher)
    as ``<directory>/<pid>.json`` for the launcher to merge. Once per destination."""
    import atexit

    if (fmt, path, directory) in _AT_EXIT:
        return
    _AT_EXIT.append((fmt, path, directory))

    def emit() -> None:
        report = _REPORT or Report()
        try:
            if directory:
                import json

                target = os.path.join(directory, f"{os.getpid()}.json")
                with open(target + ".tmp", "w", encoding="utf-8") as fh:
                    json.dump({"pid": os.getpid(), "connections": report.rows()}, fh)
                os.replace(target + ".tmp", target)
            else:
                text = report.json() if fmt == "json" else report.text()
                if path:
                    with open(path, "w", encoding="utf-8") as fh:
                        fh.write(text)
                else:
                    sys.stderr.write(text)
                    sys.stderr.flush()
        except Exception as exc:  # the process is ending: one line, never a traceback
            try:  # noqa: SIM105 - no contextlib import at exit
                sys.stderr.write(f"ua-autotag: report not written: {type(exc).__name__}\n")
            except Exception:
                pass

    atexit.register(emit)


def merged(directory: str) -> Report:
    """The report of every process that wrote into ``directory`` (the launcher's view)."""
    import json

    groups: Dict[Tuple[Any, ...], int] = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            continue
        for row in data.get("connections", ()):
            key = tuple(row.get(f) for f in _FIELDS)
            groups[key] = groups.get(key, 0) + int(row.get("count", 1))
    rows = []
    for key, count in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        row = dict(zip(_FIELDS, key))
        row["count"] = count
        rows.append(row)
    return Report(rows)
