'use strict';
// `ua-autotag verify` for Node.js: connect with a real client, the way an unmodified
// application would (no User-Agent set here: the preload in NODE_OPTIONS adds it).
// Modules resolve from the current directory, then NODE_PATH. Prints one JSON line.
const path = require('path');
const { createRequire } = require('module');

const req = createRequire(path.join(process.cwd(), 'ua-autotag-verify.cjs'));
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

function resolvable(name) {
  try {
    req.resolve(name);
    return true;
  } catch (_) {
    return false;
  }
}

function version(name) {
  try {
    return req(name + '/package.json').version;
  } catch (_) {
    return null;
  }
}

async function databricks(port) {
  const { DBSQLClient } = req('@databricks/sql');
  const client = new DBSQLClient();
  let error = null;
  try {
    await client.connect({
      host: '127.0.0.1',
      port: port,
      path: '/sql/1.0/warehouses/ua-autotag-verify',
      token: 'ua-autotag-verify',
      checkServerCertificate: false, // the local recorder's throwaway certificate
      telemetryEnabled: false,
      retryMaxAttempts: 1,
    });
    await client.openSession();
  } catch (err) {
    error = String((err && err.message) || err).split('\n')[0]; // the recorder answers 404
  }
  try {
    await client.close();
  } catch (_) {
    // already failed
  }
  out({ client: '@databricks/sql', version: version('@databricks/sql'), error: error });
}

async function postgres() {
  const { Client } = req('pg');
  const client = new Client(); // PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, PGAPPNAME
  await client.connect();
  try {
    const r = await client.query(
      'SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()'
    );
    out({ client: 'pg', version: version('pg'), received: r.rows[0].application_name });
  } finally {
    await client.end();
  }
}

(async () => {
  const port = Number(process.argv[2] || 0);
  if (port && resolvable('@databricks/sql')) return databricks(port);
  if (resolvable('pg')) return postgres();
  out({ skip: 'neither @databricks/sql nor pg is resolvable from ' + process.cwd() });
})().catch((err) => {
  out({ error: String((err && err.message) || err).split('\n')[0] });
});
