'use strict';
// Leases: heartbeats keep a long job, a lost lease drops the result
// (fencing, PQ001), an abort reaches the job through ctx.signal (PQ002).
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const procq = require('..');
const { freshDb, waitFor, nextEvent, gate, sleep, row } = require('./helpers');

let db;
before(async () => { db = await freshDb('lease', { 'procq.lease_duration': '5s', 'procq.retry_delay': '0' }); });
after(async () => { if (db) await db.drop(); });

function worker(opts) {
  const w = new procq.Worker({ connection: db.connection, pollInterval: 200, concurrency: 1, ...opts });
  w.errors = [];
  w.on('error', (err) => w.errors.push(err));
  return w;
}

test('heartbeats keep a job running longer than procq.lease_duration', async () => {
  const w = worker({ heartbeatInterval: 250 });
  const release = gate();
  w.task('long', async () => { await release.promise; return 'done'; });
  const id = await procq.defer(db.pool, { task: 'long' });
  await w.start();
  try {
    await waitFor('the job to start', async () => (await row(db.pool, id)).status === 'doing');
    // Over two leases long, recover_stalled never finds it expired.
    for (let i = 0; i < 24; i++) {
      await sleep(500);
      const r = await db.pool.query('SELECT procq.recover_stalled() AS n');
      assert.equal(r.rows[0].n, 0, 'no lease ran out');
    }
    const held = await row(db.pool, id);
    assert.equal(held.status, 'doing');
    assert.equal(held.attempts, 1);
    release.open();
    await waitFor('the job to succeed', async () => (await row(db.pool, id)).status === 'succeeded');
  } finally {
    release.open();
    await w.stop();
  }
  assert.equal((await row(db.pool, id)).attempts, 1);
  assert.deepEqual(w.errors, []);
});

test('fencing: a worker whose lease was lost drops its result (PQ001)', async () => {
  const w = worker({ heartbeatInterval: 1e9 }); // never heartbeats
  const release = gate();
  w.task('stale', async () => { await release.promise; return 'stale result'; });
  const id = await procq.defer(db.pool, { task: 'stale', maxAttempts: 2 });
  await w.start();
  try {
    await waitFor('the job to start', async () => (await row(db.pool, id)).status === 'doing');
    await waitFor('its lease to run out', async () => {
      const r = await db.pool.query('SELECT lease_expires_at < now() AS out FROM procq.jobs WHERE id = $1::bigint', [String(id)]);
      return r.rows[0].out;
    });
    const rec = await db.pool.query('SELECT procq.recover_stalled() AS n');
    assert.equal(rec.rows[0].n, 1);
    // another worker takes it: attempt 2 is current now
    const [taken] = await procq.fetchJobs(db.pool, 1, { worker: 'other', tasks: ['stale'] });
    assert.equal(taken.id, id);
    assert.equal(taken.attempts, 2);
    const lost = nextEvent(w, 'leaseLost', 'the stale worker to see PQ001');
    release.open();
    const [job] = await lost;
    assert.equal(job.id, id);
    const now = await row(db.pool, id);
    assert.equal(now.status, 'doing', 'the stale result changed nothing');
    assert.equal(now.worker, 'other');
    assert.equal(now.result, null);
    assert.equal(await procq.finishJob(db.pool, id, 'succeeded', { result: 'fresh', attempt: 2 }), 'succeeded');
    assert.equal((await row(db.pool, id)).result, 'fresh');
  } finally {
    release.open();
    await w.stop();
  }
  assert.deepEqual(w.errors, []);
});

test('abort: cancel_job(abort => true) fires ctx.signal, the job ends cancelled', async () => {
  const w = worker({ heartbeatInterval: 200 });
  let reason = null;
  w.task('abortable', (job, ctx) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('never aborted')), 60000);
    ctx.signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reason = ctx.signal.reason;
      resolve('stopped early');
    });
  }));
  const id = await procq.defer(db.pool, { task: 'abortable' });
  await w.start();
  try {
    await waitFor('the job to start', async () => (await row(db.pool, id)).status === 'doing');
    const aborted = nextEvent(w, 'aborted', 'the worker to see the abort');
    assert.equal(await procq.cancelJob(db.pool, id, { abort: true }), true);
    await aborted;
  } finally {
    await w.stop();
  }
  assert.ok(reason instanceof procq.JobAbortedError, `signal reason: ${reason}`);
  assert.equal(reason.code, 'PQ002');
  const r = await row(db.pool, id);
  assert.equal(r.status, 'cancelled');
  assert.equal(r.result, null);
  assert.deepEqual(w.errors, []);
});
