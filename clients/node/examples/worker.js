// A long-running worker: runs 'send_email' jobs until SIGTERM or SIGINT,
// then finishes the jobs it runs, hands back those it fetched and had not
// started, and exits with code 0.
//   node examples/worker.js        (Ctrl-C to stop)
'use strict';
const { Worker } = require('procq');

// a stand-in for your mail library: takes an AbortSignal, as fetch() does
const mailer = {
  async send(to, { signal }) {
    signal.throwIfAborted();
    return `queued for ${to}`;
  },
};

const worker = new Worker({ queues: ['mail'], concurrency: 4, batchSize: 8, pollInterval: 5000 });
worker.task('send_email', async (job, ctx) => {
  await mailer.send(job.args.to, { signal: ctx.signal });   // pass the AbortSignal on
  return { sent: job.args.to };                              // becomes the job's result
});
worker.on('jobDone', (job, status) => console.log(`job ${job.id} ${job.task}: ${status}`));
worker.on('error', (err) => console.error('worker:', err.context, err.message));
worker.on('stopped', () => console.log('stopped'));
worker.handleSignals();   // SIGTERM, SIGINT -> worker.stop()
worker.start().then(() => console.log(`worker ${worker.name} listening`));
