// A long-running worker: runs 'send_email' jobs until SIGTERM or SIGINT,
// then finishes the jobs it runs, hands back those it fetched and had not
// started, and exits with code 0.
//   node examples/worker.js        (Ctrl-C to stop)
'use strict';
const { Worker } = require('procq');

const worker = new Worker({
  // connectionString: 'postgres://app_worker@db/app',  (default: PG* variables)
  queues: ['mail'],
  concurrency: 4,
  batchSize: 8,
  pollInterval: 5000, // scheduled jobs and retries send no NOTIFY: they are found by polling
});

worker.task('send_email', async (job, ctx) => {
  // a long job would pass ctx.signal on (fetch(url, { signal: ctx.signal }))
  if (ctx.signal.aborted) throw ctx.signal.reason;
  return { sent: job.args.to };
});

worker.on('jobDone', (job, status) => console.log(`job ${job.id} ${job.task}: ${status}`));
worker.on('error', (err) => console.error('worker:', err.context, err.message));
worker.on('stopped', () => console.log('stopped'));

worker.handleSignals(); // SIGTERM, SIGINT -> worker.stop()
worker.start().then(() => console.log(`worker ${worker.name} listening`));
