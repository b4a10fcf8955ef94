'use strict';
// Test helpers: a database of its own per test file (created beside the one
// the suite got, PGDATABASE, and dropped at the end), and bounded waits that
// say what they waited for.

const pg = require('pg');

const base = process.env.PGDATABASE || 'postgres';

/**
 * Creates database `<PGDATABASE>_<name>` with procq installed and the given
 * database-level settings (e.g. {'procq.lease_duration': '2s'}); returns
 * {name, connection, pool, drop()}.
 */
async function freshDb(name, settings = {}) {
  const dbname = `${base}_${name}`.slice(0, 63);
  const admin = new pg.Client({ database: base });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS "${dbname}" WITH (FORCE)`);
    await admin.query(`CREATE DATABASE "${dbname}"`);
    for (const [k, v] of Object.entries(settings)) {
      await admin.query(`ALTER DATABASE "${dbname}" SET ${k} = '${v}'`);
    }
  } finally {
    await admin.end();
  }
  const connection = { database: dbname };
  const setup = new pg.Client(connection);
  await setup.connect();
  await setup.query('CREATE EXTENSION procq');
  await setup.end();
  const pool = new pg.Pool({ ...connection, max: 4 });
  return {
    name: dbname,
    connection,
    pool,
    async drop() {
      await pool.end();
      const c = new pg.Client({ database: base });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS "${dbname}" WITH (FORCE)`);
      await c.end();
    },
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value (returned), for at most ms. */
async function waitFor(what, fn, ms = 60000) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`gave up after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Resolves with the args of the next `event` of emitter, for at most ms. */
function nextEvent(emitter, event, what, ms = 60000, filter = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.removeListener(event, on);
      reject(new Error(`gave up after ${ms} ms waiting for ${what} (event ${event})`));
    }, ms);
    function on(...args) {
      if (!filter(...args)) return;
      clearTimeout(timer);
      emitter.removeListener(event, on);
      resolve(args);
    }
    emitter.on(event, on);
  });
}

/** A promise with its resolve function outside (a gate a job waits at). */
function gate() {
  let open;
  const promise = new Promise((r) => { open = r; });
  return { promise, open };
}

/** The job's row (status, attempts, worker...) straight from the table. */
async function row(pool, id) {
  const r = await pool.query('SELECT status::text, attempts, worker, error, result, lease_expires_at FROM procq.jobs WHERE id = $1::bigint', [String(id)]);
  return r.rows[0];
}

module.exports = { freshDb, waitFor, nextEvent, gate, sleep, row };
