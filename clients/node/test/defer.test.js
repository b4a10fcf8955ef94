'use strict';
// The producer's API against a real database: defer, deferJobs,
// deferWorkflow, getJob, waitJob, cancelJob, retryJob; ids above 2^53.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const procq = require('..');
const { freshDb } = require('./helpers');

let db;
before(async () => { db = await freshDb('defer'); });
after(async () => { if (db) await db.drop(); });

test('defer: every option reaches the job, args arrays stay JSON arrays', async () => {
  const parent = await procq.defer(db.pool, { task: 'parent' });
  assert.equal(typeof parent, 'bigint');
  const at = new Date(Date.now() + 3600e3);
  const id = await procq.defer(db.pool, {
    task: 'send', args: [1, 'two', { three: 3 }], queue: 'mail', priority: 7,
    scheduledAt: at, dependsOn: [parent], maxAttempts: 3, lock: 'L', queueingLock: 'Q',
    runAfter: 'completion', workflowId: parent,
  });
  const job = await procq.getJob(db.pool, id);
  assert.equal(job.id, id);
  assert.deepEqual(job.args, [1, 'two', { three: 3 }]);
  const r = await db.pool.query("SELECT jsonb_typeof(args) AS t FROM procq.jobs WHERE id = $1::bigint", [String(id)]);
  assert.equal(r.rows[0].t, 'array');
  assert.equal(job.queue, 'mail');
  assert.equal(job.priority, 7);
  assert.equal(job.scheduledAt.getTime(), at.getTime());
  assert.equal(job.maxAttempts, 3);
  assert.equal(job.lock, 'L');
  assert.equal(job.queueingLock, 'Q');
  assert.equal(job.runAfter, 'completion');
  assert.equal(job.workflowId, parent);
  assert.equal(job.pendingParents, 1);
  // defaults stay the server's
  const plain = await procq.getJob(db.pool, await procq.defer(db.pool, { task: 'plain' }));
  assert.deepEqual(plain.args, {});
  assert.equal(plain.queue, 'default');
  assert.equal(plain.maxAttempts, 1);
});

test('defer: bad options are refused before anything is sent; SQL errors keep their SQLSTATE', async () => {
  await assert.rejects(procq.defer(db.pool, { task: 't', maxAttempt: 2 }), /unknown option "maxAttempt"/);
  await assert.rejects(procq.defer(db.pool, { task: 't', dependsOn: [2 ** 60] }), TypeError);
  await assert.rejects(procq.defer(db.pool, { task: 't', maxAttempts: 0 }), { code: '22023' });
  await assert.rejects(procq.defer(db.pool, { task: 't', dependsOn: [999999] }), { code: '23503' });
  await assert.rejects(procq.deferJobs(db.pool, { task: 't', args: [{}, null] }), { code: '22004' });
  await assert.rejects(procq.getJob(db.pool, 123456789n), { code: 'P0002' });
});

test('deferJobs: one job per element, ids in the order of args', async () => {
  const parent = await procq.defer(db.pool, { task: 'p' });
  const ids = await procq.deferJobs(db.pool, {
    task: 'part', args: [{ n: 1 }, [2, 2], 'three'], dependsOn: [parent], queue: 'parts',
  });
  assert.equal(ids.length, 3);
  assert.ok(ids[0] < ids[1] && ids[1] < ids[2]);
  const jobs = await Promise.all(ids.map((i) => procq.getJob(db.pool, i)));
  assert.deepEqual(jobs.map((j) => j.args), [{ n: 1 }, [2, 2], 'three']);
  assert.ok(jobs.every((j) => j.queue === 'parts' && j.pendingParents === 1 && j.task === 'part'));
});

test('deferWorkflow: {key: id}, dependencies by key and by id, camelCase fields', async () => {
  const outside = await procq.defer(db.pool, { task: 'outside' });
  const ids = await procq.deferWorkflow(db.pool, [
    { key: 'extract', task: 'extract', args: { file: 'a.csv' } },
    { key: 'load', task: 'load', dependsOn: ['extract', outside], maxAttempts: 2 },
    { key: 'alert', task: 'alert', dependsOn: ['load'], run_after: 'failure' },
  ]);
  assert.deepEqual(Object.keys(ids), ['extract', 'load', 'alert']);
  const load = await procq.getJob(db.pool, ids.load);
  assert.equal(load.pendingParents, 2);
  assert.equal(load.maxAttempts, 2);
  assert.equal(load.stepKey, 'load');
  assert.equal(load.workflowId, ids.extract);
  assert.equal((await procq.getJob(db.pool, ids.alert)).runAfter, 'failure');
  const more = await procq.deferWorkflow(db.pool, [{ key: 'late', task: 'late' }], { workflowId: ids.extract });
  assert.equal((await procq.getJob(db.pool, more.late)).workflowId, ids.extract);
  await assert.rejects(procq.deferWorkflow(db.pool, [{ key: 'a', task: 't', dependsOn: ['nope'] }]), { code: '22023' });
});

test('ids above 2^53 stay exact both ways', async () => {
  const start = 2n ** 53n + 10n;
  await db.pool.query("SELECT setval(pg_get_serial_sequence('procq.jobs', 'id'), $1::bigint)", [start.toString()]);
  const id = await procq.defer(db.pool, { task: 'big' });
  assert.equal(id, start + 1n);
  assert.ok(id > BigInt(Number.MAX_SAFE_INTEGER));
  const child = await procq.defer(db.pool, { task: 'child', dependsOn: [id], workflowId: id.toString() });
  const wf = await procq.deferWorkflow(db.pool, [{ key: 'k', task: 'w', dependsOn: [id] }]);
  const [c, k] = await Promise.all([procq.getJob(db.pool, child), procq.getJob(db.pool, wf.k)]);
  assert.equal(c.workflowId, id);
  assert.equal(k.pendingParents, 1);
  assert.equal(k.workflowId, wf.k); // a workflow of its own, depending on the big id
  const r = await db.pool.query('SELECT depends_on::text AS d FROM procq.job_dependencies WHERE job_id = $1::bigint', [child.toString()]);
  assert.equal(r.rows[0].d, (start + 1n).toString());
  const ids = await procq.deferJobs(db.pool, { task: 'many', args: [{}, {}], dependsOn: [id] });
  assert.equal(ids[1], ids[0] + 1n);
  assert.equal((await procq.getJob(db.pool, ids[1])).id, ids[1]);
});

test('cancelJob, retryJob, waitJob', async () => {
  const id = await procq.defer(db.pool, { task: 'to-cancel' });
  const child = await procq.defer(db.pool, { task: 'its-child', dependsOn: [id] });
  assert.equal(await procq.cancelJob(db.pool, id), true);
  assert.equal(await procq.cancelJob(db.pool, id), false);
  assert.equal((await procq.getJob(db.pool, child)).status, 'cancelled');
  const ended = await procq.waitJob(db.pool, id, { timeout: 1000 });
  assert.equal(ended.status, 'cancelled');
  await procq.retryJob(db.pool, id);
  assert.equal((await procq.getJob(db.pool, id)).status, 'todo');
  assert.equal((await procq.getJob(db.pool, child)).status, 'todo');
  const still = await procq.waitJob(db.pool, id, { timeout: '10 milliseconds' });
  assert.equal(still.status, 'todo'); // timed out: it has not ended
});

test('releaseJob: the status it left the job in (failed when its queueing lock was taken meanwhile)', async () => {
  const plain = await procq.defer(db.pool, { task: 'rel', queue: 'rel' });
  const locked = await procq.defer(db.pool, { task: 'rel', queue: 'rel', queueingLock: 'rel-q' });
  const fetched = await procq.fetchJobs(db.pool, 2, { queues: ['rel'] });
  assert.deepEqual(fetched.map((j) => j.id).sort(), [plain, locked].sort());
  await procq.defer(db.pool, { task: 'rel', queue: 'rel', queueingLock: 'rel-q' });
  assert.equal(await procq.releaseJob(db.pool, plain, 1), 'todo');
  assert.equal(await procq.releaseJob(db.pool, locked, 1), 'failed');
  assert.equal((await procq.getJob(db.pool, plain)).status, 'todo');
  const failed = await procq.getJob(db.pool, locked);
  assert.equal(failed.status, 'failed');
  assert.match(failed.error, /not requeued/);
});
