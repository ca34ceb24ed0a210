"""The applications under test and how to run them, shared by the tests in tests/runtimes.

None of the applications mentions ua-autotag. Every runner takes ``launcher``: a command
prefix (``ua-autotag run ... --``) the application is started under, empty to start it
directly. The evidence is what the peers received: the HTTPS recorder for
``@databricks/sql``, ``pg_stat_activity`` for node-postgres and pgjdbc.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Optional, Sequence

from tests import pg
from tests.runtimes.conftest import PGJDBC, TIMEOUT

HTTP_PATH = "/sql/1.0/warehouses/app"
HEADER = re.compile(
    r"^NodejsDatabricksSqlConnector/\S+ \((?:(?P<entry>.*); )?Node\.js [^;]+; [^)]*\)"
)

# An application that knows nothing of ua-autotag: connects with the options it is given
# (JSON in argv[2]) and says whether its own options object was left as it was.
DBSQL_CJS = """
const { DBSQLClient } = require('@databricks/sql');
const own = JSON.parse(process.argv[2] || '{}');
const options = Object.assign({
  host: '127.0.0.1', port: Number(process.env.PEER_PORT), path: 'HTTP_PATH', token: 'app-token',
  checkServerCertificate: false, telemetryEnabled: false, retryMaxAttempts: 1,
}, own);
const before = JSON.stringify(options);
(async () => {
  const client = new DBSQLClient();
  try { await client.connect(options); await client.openSession(); }
  catch (err) { console.log('connect failed as expected: ' + String(err.message).split('\\n')[0]); }
  console.log('OPTIONS-UNCHANGED=' + (JSON.stringify(options) === before));
  try { await client.close(); } catch (_) {}
})();
""".replace("HTTP_PATH", HTTP_PATH)

DBSQL_ESM = DBSQL_CJS.replace(
    "const { DBSQLClient } = require('@databricks/sql');",
    "import { DBSQLClient } from '@databricks/sql';",
)

#: where the SQL connector's kernel backend (``useKernel``) opens its session
KERNEL_PATH = "/api/2.0/sql/sessions"

#: the kernel backend's module, imported by the app itself (as typings-driven code does):
#: its default export has a connect() of its own, which is not the client's
KERNEL_IMPORT_CJS = "require('@databricks/sql/dist/kernel/KernelBackend');\n"
KERNEL_IMPORT_ESM = "import '@databricks/sql/dist/kernel/KernelBackend.js';\n"

# An application whose options are not a plain object: ``prototype`` (argv[2]) inherits
# every option from Object.create(defaults); ``class`` is a config class whose getters
# read private fields. It says whether its options object kept its own keys and prototype.
DBSQL_INHERITED_CJS = """
const { DBSQLClient } = require('@databricks/sql');
const port = Number(process.env.PEER_PORT);
const defaults = {
  host: '127.0.0.1', port, path: 'HTTP_PATH', token: 'app-token',
  checkServerCertificate: false, telemetryEnabled: false, retryMaxAttempts: 1,
};
class Config {
  #token = 'app-token';
  #entry = 'PartnerApp/1.0';
  get host() { return '127.0.0.1'; }
  get port() { return port; }
  get path() { return 'HTTP_PATH'; }
  get token() { return this.#token; }
  get checkServerCertificate() { return false; }
  get telemetryEnabled() { return false; }
  get retryMaxAttempts() { return 1; }
  get userAgentEntry() { return this.#entry; }
}
const options = process.argv[2] === 'class'
  ? new Config()
  : Object.assign(Object.create(defaults), { userAgentEntry: 'PartnerApp/1.0' });
const proto = Object.getPrototypeOf(options);
const keys = () => JSON.stringify(Reflect.ownKeys(options).map(String));
const before = keys();
(async () => {
  const client = new DBSQLClient();
  try { await client.connect(options); await client.openSession(); }
  catch (err) { console.log('connect failed as expected: ' + String(err.message).split('\\n')[0]); }
  const same = keys() === before && Object.getPrototypeOf(options) === proto
    && options.userAgentEntry === 'PartnerApp/1.0';
  console.log('OPTIONS-UNCHANGED=' + same);
  try { await client.close(); } catch (_) {}
})();
""".replace("HTTP_PATH", HTTP_PATH)

DBSQL_INHERITED_ESM = DBSQL_INHERITED_CJS.replace(
    "const { DBSQLClient } = require('@databricks/sql');",
    "import { DBSQLClient } from '@databricks/sql';",
)

# node-postgres with the connection config given as JSON in argv[2]
PG_APP = """
const { Client } = require('pg');
(async () => {
  const client = new Client(JSON.parse(process.argv[2] || '{}'));
  await client.connect();
  const r = await client.query(
    'SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()');
  console.log('application_name=' + r.rows[0].application_name);
  await client.end();
})();
"""

#: node-postgres' connection to the local server (no application_name of its own)
PG_CONNECTION = {"host": pg.HOST, "port": pg.PORT, "user": pg.USER, "database": pg.DBNAME}

#: pgjdbc's own default ApplicationName
DRIVER_DEFAULT = "PostgreSQL JDBC Driver"

#: a JAVA_TOOL_OPTIONS of the user's, with quotes and spaces, and what App reports for it
THEIR_JAVA_TOOL_OPTIONS = '-Dua.test.foo="a b  c" \'-Dua.test.bar=it "is" here\' -Xss2m'
THEIR_JAVA_PROPERTIES = {"ua.test.foo": "a b  c", "ua.test.bar": 'it "is" here'}

#: what the user's own preload (see their_node_options) prints when node loads it
THEIR_PRELOAD_RAN = "THEIR-PRELOAD-RAN my app"


def run(
    command: Sequence[str], env: dict[str, str], cwd: Optional[Path] = None
) -> subprocess.CompletedProcess[str]:
    """Run ``command``; fails the test on a non-zero exit."""
    proc = subprocess.run(
        list(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, f"{command[0]} failed ({proc.returncode}): {proc.stderr}"
    return proc


# -- Node.js ----------------------------------------------------------------------------
def node_command(app_dir: Path, name: str, source: str, *args: str) -> list[str]:
    """Write the application ``name`` into ``app_dir``; ``node name ARGS`` (run in app_dir)."""
    (app_dir / name).write_text(source)
    return ["node", name, *args]


def dbsql_command(app_dir: Path, own: Optional[dict[str, Any]] = None,
                  esm: bool = False) -> list[str]:  # fmt: skip
    """The @databricks/sql application (app.cjs or app.mjs) connecting with ``own`` options."""
    name, source = ("app.mjs", DBSQL_ESM) if esm else ("app.cjs", DBSQL_CJS)
    return node_command(app_dir, name, source, json.dumps(own or {}))


def run_node(
    app_dir: Path, name: str, source: str, env: dict[str, str], *args: str,
    launcher: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return run([*launcher, *node_command(app_dir, name, source, *args)], env, app_dir)


def connect(app_dir: Path, peer: Any, env: dict[str, str], own: dict[str, Any] | None = None,
            esm: bool = False, launcher: Sequence[str] = (), prelude: str = "",
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the @databricks/sql application against ``peer``; its options must stay as given.
    ``prelude`` is source put before the application's own (an extra import)."""
    env = {**env, "PEER_PORT": str(peer.port)}
    command = dbsql_command(app_dir, own, esm)
    if prelude:
        script = app_dir / command[1]
        script.write_text(prelude + script.read_text())
    proc = run([*launcher, *command], env, app_dir)
    assert "OPTIONS-UNCHANGED=true" in proc.stdout, proc.stdout
    return proc


def user_agent_sent(peer: Any, path: str = HTTP_PATH) -> str:
    """The one User-Agent header the recorder received on ``path`` (the SQL path)."""
    agents = [r.user_agent for r in peer.snapshot() if r.path == path]
    assert agents, f"the driver never reached the recorder: {peer.snapshot()}"
    assert len(set(agents)) == 1, agents
    return agents[0] or ""


def entry_sent(peer: Any, path: str = HTTP_PATH) -> Optional[str]:
    """The userAgentEntry inside the header the recorder received on ``path``."""
    agent = user_agent_sent(peer, path)
    match = HEADER.match(agent)
    assert match, agent
    return match.group("entry")


def pg_application_name(
    app_dir: Path, env: dict[str, str], connection: Optional[dict[str, Any]] = None,
    name: str = "pg.cjs", launcher: Sequence[str] = (),
) -> str:  # fmt: skip
    """What PostgreSQL recorded for the node-postgres application's own backend."""
    config = json.dumps(PG_CONNECTION if connection is None else connection)
    out = run_node(app_dir, name, PG_APP, env, config, launcher=launcher).stdout
    (line,) = (ln for ln in out.splitlines() if ln.startswith("application_name="))
    return line[len("application_name=") :]


def their_node_options(directory: Path) -> str:
    """A NODE_OPTIONS of the user's: a title with a space and a preload of theirs whose
    path has quotes and spaces; the preload prints ``THEIR_PRELOAD_RAN`` when loaded."""
    theirs = directory / 'their "tools" dir' / "pre load.cjs"
    theirs.parent.mkdir()
    theirs.write_text("console.log('THEIR-PRELOAD-RAN ' + process.title);\n")
    quoted = str(theirs).replace("\\", "\\\\").replace('"', '\\"')
    return f'--title "my app" --require "{quoted}" --max-old-space-size=256'


# -- Java ---------------------------------------------------------------------------------
def java_command(java_app: Path, *args: str) -> list[str]:
    """``java App ARGS`` with pgjdbc on the class path (App.java, compiled by ``java_app``)."""
    return ["java", "-cp", f"{PGJDBC}{os.pathsep}{java_app}", "App", *args]


def java_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` plus what App reads (the PostgreSQL user)."""
    return {**env, "APP_PGUSER": pg.USER}


def app_values(stdout: str) -> dict[str, str]:
    """App's key=value lines."""
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def run_app(
    java_app: Path, env: dict[str, str], *args: str, launcher: Sequence[str] = ()
) -> dict[str, str]:
    """Run App with ``env``; its key=value lines (fails the test on a non-zero exit)."""
    return app_values(run([*launcher, *java_command(java_app, *args)], java_env(env)).stdout)
