'use strict';
// ua-autotag Node.js preload (loaded with `node --require` through NODE_OPTIONS).
//
// Why Module._load: it is the one function every CommonJS require() goes through, and
// Node's ES module loader loads CommonJS packages (such as @databricks/sql) through it
// too, so one wrapper covers `require(...)` and `import ... from '@databricks/sql'`.
// When @databricks/sql shows up, DBSQLClient.prototype.connect gets a wrapper that
// merges our User-Agent entry into a copy of the caller's options.
//
// Rules: never throw into the application (everything is in try/catch, at most one
// warning line on stderr), cost nothing measurable when the package is never loaded,
// and install at most once per process (a second copy of this file is a no-op).
//
// Reads: UA_AUTOTAG_NODE_USER_AGENT, else UA_AUTOTAG_USER_AGENT (the value);
//        UA_AUTOTAG_NODE_MODE, else UA_AUTOTAG_MODE, else "append" (the mode).
(function uaAutotagPreload() {
  var INSTALLED = Symbol.for('ua-autotag.node-preload');
  var WRAPPED = Symbol.for('ua-autotag.dbsql-connect');
  var warned = false;

  function warn(what, err) {
    if (warned) return;
    warned = true;
    try {
      var detail = err && err.message ? String(err.message) : String(err);
      process.stderr.write(
        'ua-autotag: node preload: ' + what + ': ' + detail.split('\n')[0] + '\n'
      );
    } catch (_) {
      // stderr closed: nothing more to do
    }
  }

  try {
    if (globalThis[INSTALLED]) return;
    Object.defineProperty(globalThis, INSTALLED, { value: true });
  } catch (err) {
    warn('not installed', err);
    return;
  }

  function settings() {
    var env = process.env;
    var value = (env.UA_AUTOTAG_NODE_USER_AGENT || env.UA_AUTOTAG_USER_AGENT || '').trim();
    var mode = (env.UA_AUTOTAG_NODE_MODE || env.UA_AUTOTAG_MODE || 'append').trim().toLowerCase();
    if (mode !== 'append' && mode !== 'replace' && mode !== 'keep') mode = 'append';
    return { value: value, mode: mode };
  }

  // Same rule as the Python side's merge_tokens: append adds ours once, replace sends
  // ours only, keep leaves a caller's value alone.
  function merge(theirs, ours, mode) {
    if (typeof theirs !== 'string' || theirs.trim() === '' || mode === 'replace') return ours;
    if (mode === 'keep') return theirs;
    if (theirs.split(/\s+/).indexOf(ours) !== -1) return theirs;
    return theirs + ' ' + ours;
  }

  function patchClient(DBSQLClient) {
    var proto = DBSQLClient && DBSQLClient.prototype;
    if (!proto || typeof proto.connect !== 'function' || proto.connect[WRAPPED]) return;
    var original = proto.connect;
    // 1.x releases read only `clientId`; later ones read `userAgentEntry` and copy a
    // deprecated `clientId` into it. The connect() source tells which one this is.
    var knowsEntry = /userAgentEntry/.test(Function.prototype.toString.call(original));

    function connect(options) {
      var args = Array.prototype.slice.call(arguments);
      try {
        var s = settings();
        if (s.value && options !== null && typeof options === 'object') {
          var copy = Object.assign({}, options); // the caller's object stays untouched
          var theirs = knowsEntry ? options.userAgentEntry || options.clientId : options.clientId;
          var merged = merge(theirs, s.value, s.mode);
          copy.userAgentEntry = merged;
          if (!knowsEntry || options.clientId !== undefined) copy.clientId = merged;
          args[0] = copy;
        }
      } catch (err) {
        warn('@databricks/sql connect options left unchanged', err);
      }
      return original.apply(this, args);
    }
    Object.defineProperty(connect, WRAPPED, { value: original });
    proto.connect = connect;
  }

  // "@databricks/sql", "@databricks/sql/dist/...", or the resolved file path the ESM
  // loader passes (also inside pnpm's .pnpm/ layout).
  var DBSQL = /(^|[\\/])@databricks[\\/]sql([\\/]|$)/;

  try {
    var Module = require('module');
    var load = Module._load;
    if (typeof load !== 'function') return;
    Module._load = function uaAutotagLoad(request) {
      var exported = load.apply(this, arguments);
      try {
        if (typeof request === 'string' && DBSQL.test(request) && exported) {
          if (typeof exported.DBSQLClient === 'function') patchClient(exported.DBSQLClient);
          else if (typeof exported.default === 'function') patchClient(exported.default);
        }
      } catch (err) {
        warn('@databricks/sql not instrumented', err);
      }
      return exported;
    };
  } catch (err) {
    warn('not installed', err);
  }
})();
