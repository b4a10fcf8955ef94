'use strict';
// The Worker against a real database: workflow order, NOTIFY wake-up,
// polling for scheduled jobs, batches, failures and retries, and its own
// statements retried on 40001/40P01.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const procq = require('..');
const { freshDb, waitFor, nextEvent, row } = require('./helpers');

let db;
before(async () => { db = await freshDb('worker', { 'procq.retry_delay': '0' }); });
after(async () => { if (db) await db.drop(); });

/** A worker on the test database that fails the test on any error it reports. */
function worker(opts) {
  const w = new procq.Worker({ connection: db.connection, ...opts });
  w.errors = [];
  w.on('error', (err) => w.errors.push(err));
  return w;
}

async function status(id) {
  return (await row(db.pool, id)).status;
}

test('a worker runs a workflow in dependency order', async () => {
  const w = worker({ concurrency: 3, pollInterval: 200 });
  const events = [];
  for (const task of ['wf_extract', 'wf_transform', 'wf_load']) {
    w.task(task, async (job) => {
      events.push(`start ${job.stepKey}`);
      await new Promise((r) => setImmediate(r));
      events.push(`end ${job.stepKey}`);
      return { step: job.stepKey };
    });
  }
  const ids = await procq.deferWorkflow(db.pool, [
    { key: 'extract', task: 'wf_extract' },
    { key: 'clean', task: 'wf_transform', dependsOn: ['extract'] },
    { key: 'enrich', task: 'wf_transform', dependsOn: ['extract'] },
    { key: 'load', task: 'wf_load', dependsOn: ['clean', 'enrich'] },
  ]);
  await w.start();
  try {
    await waitFor('the workflow to end', async () => (await status(ids.load)) !== 'todo' && (await status(ids.load)) !== 'doing');
  } finally {
    await w.stop();
  }
  assert.deepEqual(w.errors, []);
  for (const k of Object.keys(ids)) assert.equal(await status(ids[k]), 'succeeded', k);
  const at = (e) => { const i = events.indexOf(e); assert.ok(i >= 0, `${e} in ${events}`); return i; };
  assert.ok(at('end extract') < at('start clean'));
  assert.ok(at('end extract') < at('start enrich'));
  assert.ok(at('end clean') < at('start load'));
  assert.ok(at('end enrich') < at('start load'));
  assert.deepEqual((await procq.getJob(db.pool, ids.load)).result, { step: 'load' });
  const parents = await db.pool.query('SELECT procq.parent_results($1::bigint, by_key => true) AS r', [String(ids.load)]);
  assert.deepEqual(parents.rows[0].r, { clean: { step: 'clean' }, enrich: { step: 'enrich' } });
});

test('NOTIFY wakes an idle worker (its poll interval is 10 minutes)', async () => {
  const w = worker({ pollInterval: 600000 });
  w.task('notified', async () => 'woken');
  const idle = nextEvent(w, 'idle', 'the first empty fetch');
  await w.start();
  try {
    await idle; // listening since before that fetch, now sleeping for 10 minutes
    const notified = nextEvent(w, 'notification', 'NOTIFY procq', 60000);
    const id = await procq.defer(db.pool, { task: 'notified', queue: 'q_notify' });
    const [payload] = await notified;
    assert.equal(payload, 'q_notify'); // the payload is the queue
    await waitFor(`job ${id} to be run after the notification (a poll would take 10 minutes)`,
      async () => (await status(id)) === 'succeeded', 60000);
  } finally {
    await w.stop();
  }
  assert.deepEqual(w.errors, []);
});

test('a worker with queues ignores other queues\' notifications, and polls for a scheduled job', async () => {
  const w = worker({ pollInterval: 200, queues: ['q_sched'] });
  let notifications = 0;
  w.on('notification', () => notifications++);
  w.task('scheduled', async () => 'polled');
  const idle = nextEvent(w, 'idle', 'the first empty fetch');
  await w.start();
  try {
    await idle;
    await procq.defer(db.pool, { task: 'not_mine', queue: 'q_other' }); // notifies q_other: ignored
    const id = await procq.defer(db.pool, {
      task: 'scheduled', queue: 'q_sched', scheduledAt: new Date(Date.now() + 1000),
    });
    await waitFor(`scheduled job ${id} to be run`, async () => (await status(id)) === 'succeeded');
    assert.equal(notifications, 0, 'a scheduled job sends no NOTIFY; it was found by polling');
  } finally {
    await w.stop();
  }
  assert.deepEqual(w.errors, []);
});

test('batches: fetch_jobs takes batchSize jobs, at most concurrency run at once', async () => {
  const ids = await procq.deferJobs(db.pool, { task: 'batched', args: Array.from({ length: 10 }, (_, n) => ({ n })) });
  const w = worker({ batchSize: 5, concurrency: 2, pollInterval: 200 });
  const fetched = [];
  w.on('fetched', (jobs) => { if (jobs.length) fetched.push(jobs.length); });
  let running = 0;
  let most = 0;
  w.task('batched', async (job) => {
    running++;
    most = Math.max(most, running);
    await new Promise((r) => setTimeout(r, 10));
    running--;
    return job.args.n;
  });
  await w.start();
  try {
    await waitFor('10 batched jobs to succeed', async () => {
      const r = await db.pool.query("SELECT count(*)::int AS n FROM procq.jobs WHERE task = 'batched' AND status = 'succeeded'");
      return r.rows[0].n === 10;
    });
  } finally {
    await w.stop();
  }
  assert.deepEqual(fetched, [5, 5]);
  assert.ok(most <= 2, `at most 2 at once, saw ${most}`);
  assert.equal(most, 2, 'two ran at once');
  for (const [i, id] of ids.entries()) assert.equal((await procq.getJob(db.pool, id)).result, i);
  assert.deepEqual(w.errors, []);
});

test('a throwing function fails the attempt: retried while attempts are left, then failed', async () => {
  const w = worker({ pollInterval: 200 });
  const attempts = [];
  w.task('flaky', async (job, ctx) => {
    attempts.push(ctx.attempt);
    if (ctx.attempt === 1) throw new Error('first attempt fails');
    return 'second attempt works';
  });
  w.task('broken', async () => { throw new TypeError('always broken'); });
  const flaky = await procq.defer(db.pool, { task: 'flaky', maxAttempts: 2 });
  const broken = await procq.defer(db.pool, { task: 'broken' });
  await w.start();
  try {
    await waitFor('flaky to succeed', async () => (await status(flaky)) === 'succeeded');
    await waitFor('broken to fail', async () => (await status(broken)) === 'failed');
  } finally {
    await w.stop();
  }
  assert.deepEqual(attempts, [1, 2]);
  const f = await row(db.pool, flaky);
  assert.equal(f.attempts, 2);
  assert.equal(f.result, 'second attempt works');
  const b = await row(db.pool, broken);
  assert.match(b.error, /TypeError: always broken/);
  assert.deepEqual(w.errors, []);
});

test('its own statements are retried on 40001 and 40P01', async () => {
  // A pool that fails the first fetch_jobs with 40001 and the first
  // finish_job with 40P01, as PostgreSQL would, then behaves.
  const injected = { fetch: false, finish: false };
  const fake = (code) => Object.assign(new Error(`injected ${code}`), { code });
  const pool = {
    options: db.pool.options,
    async query(text, values) {
      if (!injected.fetch && text.includes('procq.fetch_jobs')) { injected.fetch = true; throw fake('40001'); }
      if (!injected.finish && text.includes('procq.finish_job')) { injected.finish = true; throw fake('40P01'); }
      return db.pool.query(text, values);
    },
  };
  const id = await procq.defer(db.pool, { task: 'retried_sql' });
  const w = new procq.Worker({ pool, pollInterval: 200, retry: { baseDelay: 5 } });
  const errors = [];
  w.on('error', (e) => errors.push(e));
  const retries = [];
  w.on('retry', (err) => retries.push(err.code));
  w.task('retried_sql', async () => 'ok');
  await w.start();
  try {
    await waitFor(`job ${id} to succeed`, async () => (await status(id)) === 'succeeded');
  } finally {
    await w.stop();
  }
  assert.deepEqual(retries, ['40001', '40P01']);
  assert.deepEqual(errors, []);
  assert.equal((await row(db.pool, id)).attempts, 1);
});

test('withRetry runs a transaction of yours again after a real 40001', async () => {
  await db.pool.query('CREATE TABLE IF NOT EXISTS counter (n int); INSERT INTO counter VALUES (0)');
  const other = await db.pool.connect();
  let runs = 0;
  try {
    await procq.withRetry(async () => {
      runs++;
      const c = await db.pool.connect();
      try {
        await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        await c.query('SELECT n FROM counter'); // the snapshot is taken here
        if (runs === 1) await other.query('UPDATE counter SET n = n + 1'); // commits after it
        await c.query('UPDATE counter SET n = n + 10'); // 40001 in the first run
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK');
        throw err;
      } finally {
        c.release();
      }
    }, { baseDelay: 5 });
  } finally {
    other.release();
  }
  assert.equal(runs, 2);
  assert.equal((await db.pool.query('SELECT n FROM counter')).rows[0].n, 11);
});
