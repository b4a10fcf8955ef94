// Defer a small workflow, run it with a Worker, print what it did.
// Connection: the usual PG* environment variables (PGHOST, PGDATABASE...).
//   node examples/quickstart.js
'use strict';
const pg = require('pg');
const { deferWorkflow, waitJob, getJob, Worker } = require('procq');

async function main() {
  const pool = new pg.Pool();

  // A DAG in one call: extract, then two transforms, then load.
  const ids = await deferWorkflow(pool, [
    { key: 'extract', task: 'extract', args: { file: 'orders.csv' } },
    { key: 'clean', task: 'transform', args: { step: 'clean' }, dependsOn: ['extract'] },
    { key: 'enrich', task: 'transform', args: { step: 'enrich' }, dependsOn: ['extract'] },
    { key: 'load', task: 'load', dependsOn: ['clean', 'enrich'], maxAttempts: 3 },
  ]);
  console.log('deferred', Object.entries(ids).map(([k, id]) => `${k}=${id}`).join(' '));

  const worker = new Worker({ pool, concurrency: 2, pollInterval: 1000 });
  worker.task('extract', async (job) => ({ rows: 120, file: job.args.file }));
  worker.task('transform', async (job) => ({ step: job.args.step }));
  worker.task('load', async (job, ctx) => {
    // the parents' results, keyed by step
    const { rows } = await ctx.pool.query(
      'SELECT procq.parent_results($1::bigint, by_key => true) AS r', [job.id.toString()]);
    return { loaded: Object.keys(rows[0].r).sort() };
  });
  await worker.start();

  const load = await waitJob(pool, ids.load, { timeout: 60000 });
  await worker.stop();
  console.log('load:', load.status, JSON.stringify(load.result));
  console.log('extract:', (await getJob(pool, ids.extract)).status);
  await pool.end();
  if (load.status !== 'succeeded') process.exitCode = 1;
}

main().catch((err) => { console.error(err); process.exitCode = 1; });
