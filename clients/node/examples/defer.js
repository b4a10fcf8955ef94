// Defer a job, a fan-out below it, and a workflow; wait for nothing (no
// worker here): print what was deferred.
//   node examples/defer.js
'use strict';
async function main() {
  const pg = require('pg');
  const { defer, deferJobs, deferWorkflow, getJob } = require('procq');
  const pool = new pg.Pool();

  const id = await defer(pool, { task: 'send_email', queue: 'mail', args: { to: 'ann@example.com' } });
  const parts = await deferJobs(pool, { task: 'part', args: [{ n: 1 }, { n: 2 }], dependsOn: [id] });
  const ids = await deferWorkflow(pool, [
    { key: 'extract', task: 'extract', args: { file: 'orders.csv' } },
    { key: 'clean', task: 'transform', args: { step: 'clean' }, dependsOn: ['extract'] },
    { key: 'enrich', task: 'transform', args: { step: 'enrich' }, dependsOn: ['extract'] },
    { key: 'load', task: 'load', dependsOn: ['clean', 'enrich'], maxAttempts: 3 },
  ]);                                     // { extract: 6n, clean: 7n, enrich: 8n, load: 9n }

  console.log(`job ${id}, parts ${parts.join(' ')}`);
  console.log('workflow', ids);
  console.log('load waits for', (await getJob(pool, ids.load)).pendingParents, 'parents');
  await pool.end();
}

main().catch((err) => { console.error(err); process.exitCode = 1; });
