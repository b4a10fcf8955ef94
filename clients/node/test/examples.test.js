'use strict';
// The examples of README.md (examples/*), run as they are.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const procq = require('..');
const { freshDb, waitFor, row } = require('./helpers');

let db;
before(async () => { db = await freshDb('examples'); });
after(async () => { if (db) await db.drop(); });

const dir = path.join(__dirname, '..', 'examples');

/** Runs an example; resolves with {code, signal, out}; kill() it if needed. */
function run(name, ms = 120000) {
  const proc = spawn(process.execPath, [path.join(dir, name)], {
    cwd: path.join(__dirname, '..'),
    env: { ...process.env, PGDATABASE: db.name },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { out += d; });
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`${name} still running after ${ms} ms; it said: ${out}`)); }, ms);
    proc.on('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal, out }); });
  });
  return { proc, done, out: () => out };
}

test('examples/quickstart.js runs a workflow to its end', async () => {
  const { code, out } = await run('quickstart.js').done;
  assert.equal(code, 0, out);
  assert.match(out, /^deferred extract=\d+ clean=\d+ enrich=\d+ load=\d+$/m);
  assert.match(out, /^load: succeeded \{"loaded":\["clean","enrich"\]\}$/m);
  assert.match(out, /^extract: succeeded$/m);
});

test('examples/transaction.js defers a job in its own transaction', async () => {
  const { code, out } = await run('transaction.js').done;
  assert.equal(code, 0, out);
  const id = /^job (\d+) deferred with its order$/m.exec(out)?.[1];
  assert.ok(id, out);
  const job = await procq.getJob(db.pool, id);
  assert.equal(job.queueingLock, 'order-1-mail');
  assert.deepEqual(job.args, { to: 'ann@example.com', order: 1 });
  await procq.cancelJob(db.pool, id); // not for the worker example
});

test('examples/defer.js defers a job, a fan-out and a workflow', async () => {
  const { code, out } = await run('defer.js').done;
  assert.equal(code, 0, out);
  assert.match(out, /^job \d+, parts \d+ \d+$/m);
  assert.match(out, /^workflow \{ extract: \d+n, clean: \d+n, enrich: \d+n, load: \d+n \}$/m);
  assert.match(out, /^load waits for 2 parents$/m);
  const id = /^job (\d+),/m.exec(out)[1];
  assert.equal(await procq.cancelJob(db.pool, id), true); // not for the worker example
});

test('examples/esm.mjs imports by name', async () => {
  const { code, out } = await run('esm.mjs').done;
  assert.equal(code, 0, out);
  assert.match(out, /^job \d+: report \[2026,12\] todo$/m);
});

test('examples/worker.js runs jobs, and stops on SIGTERM with exit code 0', async () => {
  const ids = await procq.deferJobs(db.pool, { task: 'send_email', queue: 'mail', args: [{ to: 'a@x' }, { to: 'b@x' }] });
  const w = run('worker.js');
  try {
    for (const id of ids) {
      await waitFor(`job ${id} to be sent; the worker said: ${w.out()}`, async () => (await row(db.pool, id)).status === 'succeeded');
    }
    w.proc.kill('SIGTERM');
    const { code, signal, out } = await w.done;
    assert.equal(signal, null);
    assert.equal(code, 0, out);
    assert.match(out, /listening/);
    assert.match(out, /^stopped$/m);
  } finally {
    if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
  }
  assert.deepEqual((await row(db.pool, ids[1])).result, { sent: 'b@x' });
});

test('every js block of README.md is taken from an example file', () => {
  const fs = require('node:fs');
  const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
  const lines = (text) => text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const files = fs.readdirSync(dir).map((f) => ({ f, lines: lines(fs.readFileSync(path.join(dir, f), 'utf8')) }));
  const blocks = [...readme.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => lines(m[1]));
  assert.ok(blocks.length >= 3, `js blocks found: ${blocks.length}`);
  for (const block of blocks) {
    const found = files.some(({ lines: l }) => l.some((_x, i) => block.every((b, j) => l[i + j] === b)));
    assert.ok(found, `this block of README.md is in no file of examples/:\n${block.join('\n')}`);
  }
});
