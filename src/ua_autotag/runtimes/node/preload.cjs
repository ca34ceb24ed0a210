'use strict';
// ua-autotag Node.js preload (loaded with `node --require` through NODE_OPTIONS).
//
// Why Module._load: it is the one function every CommonJS require() goes through, and
// Node's ES module loader loads CommonJS packages (such as @databricks/sql) through it
// too, so one wrapper covers `require(...)` and `import ... from '@databricks/sql'`.
// When @databricks/sql shows up, DBSQLClient.prototype.connect (that class only) gets a
// wrapper that hands the driver the caller's options with our User-Agent entry merged in,
// through a Proxy: the caller's object, prototype included, stays as it was.
//
// Rules: never throw into the application (everything is in try/catch, at most one
// warning line on stderr), cost nothing measurable when the package is never loaded,
// and install at most once per process (a second copy of this file is a no-op).
//
// The SQL kernel (useKernel) sends at most 1024 bytes of the header the driver builds
// around the entry and cuts the rest from the end, where our token is: a long merged
// entry has the caller's part shortened so the whole header fits with our token whole
// (the Python side's fit_entry; the limit is its KERNEL_USER_AGENT_LIMIT).
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

  // merge/__init__.py KERNEL_USER_AGENT_LIMIT (a test keeps the two equal)
  var KERNEL_USER_AGENT_LIMIT = 1024;

  function bytes(text) {
    return Buffer.byteLength(text, 'utf8');
  }

  // The header's bytes around the entry: the driver's own buildUserAgentString when the
  // package's copy was found (agent/ suffix included), else the same shape with room for
  // a long version and the longest agent/ suffix.
  function around(build) {
    if (typeof build === 'function') {
      var built = build('x');
      if (typeof built === 'string' && built.indexOf('(x; ') !== -1) return bytes(built) - 1;
    }
    var os = require('os');
    var shape = 'NodejsDatabricksSqlConnector/' + '0'.repeat(16) + ' (; Node.js ' +
      process.versions.node + '; ' + os.type() + ' ' + os.release() + ')';
    return bytes(shape) + 32;
  }

  // Same rule as the Python side's fit_entry: `entry` within `budget` UTF-8 bytes with
  // `ours` whole at its end, the caller's part cut on a character boundary; an entry
  // without our token, or one that fits, is returned as is.
  function fit(entry, ours, budget) {
    if (bytes(entry) <= budget || entry.split(/\s+/).indexOf(ours) === -1) return entry;
    var caller = entry.split(' ').filter(function (t) {
      return t !== ours;
    }).join(' ').trim();
    var room = budget - bytes(ours) - 1;
    var kept = '';
    var used = 0;
    for (var ch of caller) {
      var size = bytes(ch);
      if (used + size > room) break;
      kept += ch;
      used += size;
    }
    kept = kept.replace(/ +$/, '');
    return kept ? kept + ' ' + ours : ours;
  }

  var hasOwn = Object.prototype.hasOwnProperty;

  // The options the driver sees: the caller's own object behind a Proxy that answers our
  // merged entry and keeps anything the driver writes (1.x+ copies `clientId` into
  // `userAgentEntry`) to itself. Every other read goes to the caller's object with that
  // object as receiver, so its prototype (Object.create(defaults), getters of a config
  // class, private fields included) works as written and the object itself is never
  // changed. The Proxy's target is a blank extensible object, so no Proxy invariant of
  // the caller's object (frozen, non-configurable) can make a trap throw.
  function withEntry(options, overlay) {
    var DELETED = {};
    function own(key) {
      return hasOwn.call(overlay, key);
    }
    return new Proxy(
      {},
      {
        get: function (_, key) {
          if (own(key)) return overlay[key] === DELETED ? undefined : overlay[key];
          return Reflect.get(options, key);
        },
        set: function (_, key, value) {
          overlay[key] = value;
          return true;
        },
        has: function (_, key) {
          if (own(key)) return overlay[key] !== DELETED;
          return key in options;
        },
        deleteProperty: function (_, key) {
          overlay[key] = DELETED;
          return true;
        },
        defineProperty: function (_, key, descriptor) {
          overlay[key] = descriptor.value;
          return true;
        },
        ownKeys: function () {
          var keys = Reflect.ownKeys(options).filter(function (key) {
            return !own(key);
          });
          Reflect.ownKeys(overlay).forEach(function (key) {
            if (overlay[key] !== DELETED) keys.push(key);
          });
          return keys;
        },
        getOwnPropertyDescriptor: function (_, key) {
          if (own(key)) {
            if (overlay[key] === DELETED) return undefined;
            return { value: overlay[key], writable: true, enumerable: true, configurable: true };
          }
          var found = Reflect.getOwnPropertyDescriptor(options, key);
          if (found) found.configurable = true; // the blank target holds nothing
          return found;
        },
        getPrototypeOf: function () {
          return Reflect.getPrototypeOf(options);
        },
      }
    );
  }

  function patchClient(DBSQLClient, build) {
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
          var clientId = options.clientId;
          var theirs = knowsEntry ? options.userAgentEntry || clientId : clientId;
          var merged = merge(theirs, s.value, s.mode);
          if (bytes(merged) > (KERNEL_USER_AGENT_LIMIT - 100) / 4) {
            merged = fit(merged, s.value, KERNEL_USER_AGENT_LIMIT - around(build));
          }
          var overlay = { userAgentEntry: merged };
          if (!knowsEntry || clientId !== undefined) overlay.clientId = merged;
          args[0] = withEntry(options, overlay);
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
  // the module whose default export is the client class (a deep import of it)
  var CLIENT_MODULE = /[\\/]DBSQLClient(\.js)?$/;

  // Only the client class is wrapped: other modules of the package also export classes
  // with a connect() (dist/kernel/KernelBackend, which DBSQLClient calls with the options
  // it already merged), and wrapping those would replace the caller's entry.
  function clientClass(request, exported) {
    if (typeof exported.DBSQLClient === 'function') return exported.DBSQLClient;
    if (CLIENT_MODULE.test(request) && typeof exported.default === 'function') {
      return exported.default;
    }
    return null;
  }

  // The package's own buildUserAgentString (next to the file `request` resolved to).
  function builder(Module, request, parent) {
    try {
      var file = Module._resolveFilename(request, parent);
      var root = /^(.*[\\/]@databricks[\\/]sql)[\\/]/.exec(file);
      if (!root) return null;
      var exported = require(require('path').join(root[1], 'dist', 'utils',
        'buildUserAgentString.js'));
      return typeof exported.default === 'function' ? exported.default : null;
    } catch (_) {
      return null; // an older release without it: the estimate stands
    }
  }

  try {
    var Module = require('module');
    var load = Module._load;
    if (typeof load !== 'function') return;
    Module._load = function uaAutotagLoad(request, parent) {
      var exported = load.apply(this, arguments);
      try {
        if (typeof request === 'string' && DBSQL.test(request) && exported) {
          var client = clientClass(request, exported);
          if (client && client.prototype && client.prototype.connect &&
              !client.prototype.connect[WRAPPED]) {
            patchClient(client, builder(Module, request, parent));
          }
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
