#!/usr/bin/env node
// peer.js: drive the peers of procq's benchmark (bench/run.sh) and print one
// figure, jobs per second, on stdout (progress goes to stderr).
//
//   node peer.js graphile drain N   Graphile Worker runs N no-op jobs
//   node peer.js graphile add N     Graphile Worker add_jobs of N jobs, one call
//   node peer.js pgboss drain N     pg-boss works off N no-op jobs
//   node peer.js pgboss insert N    pg-boss insert() of N jobs, one call
//
// Each peer runs in its best documented configuration for many small jobs:
//  - Graphile Worker (0.17): the configuration of its performance page:
//    24 concurrent jobs, a pool of 25, a local queue of 500 (jobs fetched and
//    locked in batches) and batched completion (completeJobBatchDelay = 0,
//    failJobBatchDelay = 0); jobs added with add_jobs (workerUtils.addJobs).
//  - pg-boss (9): jobs inserted with insert(); consumed through fetch() with
//    a batch size and complete() of the whole batch's ids, by
//    PQ_PGBOSS_LOOPS concurrent loops (default 2) of PQ_PGBOSS_BATCH
//    (default 500) jobs. (work() with batchSize does the same per fetch but
//    then sleeps newJobCheckInterval, at least 100 ms, between fetches.)
//    Its supervisor and scheduler are off: maintenance is not throughput.
// The connection comes from the libpq environment (PGHOST, PGPORT, PGUSER);
// the database is PQ_PEER_DB (default: the peer's name).
'use strict';

const { Pool } = require('pg');

const [peer, mode, nArg] = process.argv.slice(2);
const n = parseInt(nArg, 10);
if (!['graphile', 'pgboss'].includes(peer) || !Number.isInteger(n) || n < 1) {
  console.error('usage: peer.js graphile|pgboss drain|add|insert N');
  process.exit(2);
}
const database = process.env.PQ_PEER_DB || peer;
const conn = {
  host: process.env.PGHOST,
  port: parseInt(process.env.PGPORT || '5432', 10),
  user: process.env.PGUSER || 'postgres',
  database
};

const log = (...a) => console.error(`peer.js ${peer} ${mode}:`, ...a);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const now = () => Number(process.hrtime.bigint()) / 1e9;

// Poll a count query until it returns 0, or fail after timeoutS seconds.
async function waitForZero (pool, sql, timeoutS) {
  const deadline = now() + timeoutS;
  for (;;) {
    const { rows } = await pool.query(sql);
    const left = Number(rows[0].n);
    if (left === 0) return now();
    if (now() > deadline) throw new Error(`${left} jobs still left after ${timeoutS} s`);
    await sleep(10);
  }
}

async function graphile () {
  const { run, runMigrations, makeWorkerUtils } = require('graphile-worker');
  const pgPool = new Pool({ ...conn, max: 25 });
  pgPool.on('error', (e) => log(e.message));
  const silent = { logger: new (require('@graphile/logger').Logger)(() => () => {}) };
  await runMigrations({ pgPool, ...silent });
  await pgPool.query('DELETE FROM graphile_worker._private_jobs');
  await pgPool.query('VACUUM ANALYZE graphile_worker._private_jobs');
  const specs = Array.from({ length: n }, (_, i) => ({ identifier: 'bench', payload: { i } }));

  if (mode === 'add') {
    const utils = await makeWorkerUtils({ pgPool, ...silent });
    const t0 = now();
    await utils.addJobs(specs);
    const t1 = now();
    await utils.release();
    await pgPool.query('DELETE FROM graphile_worker._private_jobs');
    await pgPool.end();
    return n / (t1 - t0);
  }
  if (mode !== 'drain') throw new Error(`unknown mode ${mode}`);

  // The runner is up and listening first; the jobs arrive in one add_jobs
  // transaction, and the clock runs from its commit to the last deletion
  // (Graphile Worker deletes a job when it completes).
  const runner = await run({
    pgPool,
    noHandleSignals: true,
    taskList: { bench: async () => {} },
    ...silent,
    preset: {
      worker: {
        concurrentJobs: 24,
        maxPoolSize: 25,
        pollInterval: 1000,
        localQueue: { size: 500 },
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0
      }
    }
  });
  const utils = await makeWorkerUtils({ pgPool, ...silent });
  const t0 = now();
  await utils.addJobs(specs);
  const t1 = await waitForZero(pgPool, 'SELECT count(*) AS n FROM graphile_worker._private_jobs', 600);
  await utils.release();
  await runner.stop();
  await pgPool.end();
  return n / (t1 - t0);
}

async function pgboss () {
  const PgBoss = require('pg-boss');
  const boss = new PgBoss({ ...conn, max: 10, noSupervisor: true, noScheduling: true });
  boss.on('error', (e) => log(e.message));
  await boss.start();
  const pool = new Pool({ ...conn, max: 2 });
  await pool.query('DELETE FROM pgboss.job');
  await pool.query('VACUUM ANALYZE pgboss.job');
  const jobs = Array.from({ length: n }, (_, i) => ({ name: 'bench', data: { i } }));

  let rate;
  if (mode === 'insert') {
    const t0 = now();
    await boss.insert(jobs);
    rate = n / (now() - t0);
  } else if (mode === 'drain') {
    for (let i = 0; i < n; i += 10000) await boss.insert(jobs.slice(i, i + 10000));
    await pool.query('VACUUM ANALYZE pgboss.job');
    const loops = parseInt(process.env.PQ_PGBOSS_LOOPS || '2', 10);
    const batch = parseInt(process.env.PQ_PGBOSS_BATCH || '500', 10);
    let done = 0;
    const loop = async () => {
      for (;;) {
        const got = await boss.fetch('bench', batch);
        if (!got) return;
        await boss.complete(got.map((j) => j.id));
        done += got.length;
      }
    };
    const t0 = now();
    await Promise.all(Array.from({ length: loops }, loop));
    rate = done / (now() - t0);
    if (done !== n) throw new Error(`completed ${done} of ${n} jobs`);
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  await pool.query('DELETE FROM pgboss.job');
  await pool.end();
  await boss.stop({ graceful: false, wait: true });
  return rate;
}

(peer === 'graphile' ? graphile() : pgboss())
  .then((rate) => { console.log(rate.toFixed(0)); process.exit(0); })
  .catch((e) => { log(e.stack || e.message); process.exit(1); });
