'use strict';
// SIGTERM to a worker process: the running job finishes, the fetched jobs
// that had not started are handed back (todo, attempts unchanged), exit 0.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');
const procq = require('..');
const { freshDb, row } = require('./helpers');

let db;
before(async () => { db = await freshDb('sigterm'); });
after(async () => { if (db) await db.drop(); });

/** Spawns a node script; lines() gives its JSON lines as they come. */
function child(script, env) {
  const proc = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const seen = [];
  const waiters = [];
  readline.createInterface({ input: proc.stdout }).on('line', (line) => {
    let msg;
    try { msg = JSON.parse(line); } catch { msg = { text: line }; }
    seen.push(msg);
    for (const w of waiters.slice()) w();
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  /** The first line matching pred, waiting at most ms. */
  function line(pred, what, ms = 60000) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = seen.find(pred);
        if (m) { cleanup(); resolve(m); }
      };
      const timer = setTimeout(() => { cleanup(); reject(new Error(`gave up after ${ms} ms waiting for ${what}; the worker said: ${JSON.stringify(seen)}`)); }, ms);
      const cleanup = () => { clearTimeout(timer); const i = waiters.indexOf(check); if (i >= 0) waiters.splice(i, 1); };
      waiters.push(check);
      exited.then(() => setImmediate(() => { if (waiters.includes(check)) { cleanup(); reject(new Error(`the worker exited while waiting for ${what}; it said: ${JSON.stringify(seen)}`)); } }));
      check();
    });
  }
  return { proc, seen, line, exited };
}

function bounded(promise, what, ms = 60000) {
  let timer;
  return Promise.race([promise, new Promise((_r, reject) => { timer = setTimeout(() => reject(new Error(`gave up after ${ms} ms waiting for ${what}`)), ms); })])
    .finally(() => clearTimeout(timer));
}

test('SIGTERM: the running job finishes, the batch\'s other jobs are released, exit code 0', async () => {
  const ids = await procq.deferJobs(db.pool, { task: 'slow', args: [{ n: 1 }, { n: 2 }, { n: 3 }] });
  const c = child(path.join(__dirname, 'fixtures', 'sigterm-worker.js'), { PQ_TEST_DB: db.name });
  try {
    const started = await c.line((m) => m.started, 'the first job to start');
    assert.equal(started.started, ids[0].toString());
    // all three were fetched in one batch: the other two are doing, not started
    for (const id of ids.slice(1)) assert.equal((await row(db.pool, id)).status, 'doing');
    c.proc.kill('SIGTERM');
    const { code, signal } = await bounded(c.exited, 'the worker to exit after SIGTERM');
    assert.equal(signal, null);
    assert.equal(code, 0, `exit code; the worker said: ${JSON.stringify(c.seen)}`);
  } finally {
    if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
  }
  const first = await row(db.pool, ids[0]);
  assert.equal(first.status, 'succeeded');
  assert.deepEqual(first.result, { finished: Number(ids[0]) }); // a BigInt in a result is a JSON number
  for (const id of ids.slice(1)) {
    const r = await row(db.pool, id);
    assert.equal(r.status, 'todo', `job ${id} released`);
    assert.equal(r.attempts, 0, `job ${id}: its attempt not used up`);
    assert.equal(r.worker, null);
    assert.equal(r.error, null);
  }
  const released = c.seen.filter((m) => m.released).map((m) => m.released);
  assert.deepEqual(released.sort(), ids.slice(1).map(String).sort());
  assert.deepEqual(c.seen.filter((m) => m.error), []);
});
