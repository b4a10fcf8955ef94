// The client from an ES module: named imports work.
//   node examples/esm.mjs
import pg from 'pg';
import { defer, getJob } from 'procq';

const pool = new pg.Pool();
const id = await defer(pool, { task: 'report', args: [2026, 12] }); // args: a JSON array
const job = await getJob(pool, id);
console.log(`job ${id}: ${job.task} ${JSON.stringify(job.args)} ${job.status}`);
await pool.end();
