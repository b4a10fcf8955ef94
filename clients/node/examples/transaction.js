// Defer a job in your own transaction: the job exists exactly when the
// order does (both commit, or neither).
//   node examples/transaction.js
'use strict';
const pg = require('pg');
const { defer } = require('procq');

async function main() {
  const pool = new pg.Pool();
  await pool.query('CREATE TABLE IF NOT EXISTS orders (id bigint PRIMARY KEY, email text)');
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query("INSERT INTO orders VALUES (1, 'ann@example.com')");
    const id = await defer(client, { task: 'send_email', queue: 'mail', args: { to: 'ann@example.com', order: 1 },
                                     queueingLock: 'order-1-mail' });   // a second one while this waits: 23505
    await client.query('COMMIT');
    console.log(`job ${id} deferred with its order`);
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
    await pool.end();
  }
}

main().catch((err) => { console.error(err); process.exitCode = 1; });
