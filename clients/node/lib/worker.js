'use strict';
// A worker: fetches jobs of its tasks in batches, runs them with bounded
// concurrency, heartbeats them, finishes them with fencing, and stops
// cleanly (README.md of this package, "Worker").

const { EventEmitter } = require('node:events');
const os = require('node:os');
const pg = require('pg');
const api = require('./api');
const { withRetry } = require('./retry');

/** SQLSTATE of a finish/heartbeat whose attempt is no longer current. */
const LEASE_LOST = 'PQ001';
/** SQLSTATE of a finish/heartbeat of a job aborted by cancel_job(abort => true). */
const JOB_ABORTED = 'PQ002';

/** The reason of ctx.signal when the job was aborted (PQ002). */
class JobAbortedError extends Error {
  constructor(jobId) {
    super(`job ${jobId} was aborted (cancel_job with abort)`);
    this.name = 'JobAbortedError';
    this.code = JOB_ABORTED;
  }
}

/** The reason of ctx.signal when the job's lease was lost (PQ001). */
class LeaseLostError extends Error {
  constructor(jobId) {
    super(`job ${jobId}: lease lost (another worker may run it now); its result will be dropped`);
    this.name = 'LeaseLostError';
    this.code = LEASE_LOST;
  }
}

/** The text stored as a failed job's error. */
function errorText(err) {
  if (err instanceof Error) return err.stack || `${err.name}: ${err.message}`;
  try {
    return typeof err === 'string' ? err : JSON.stringify(err);
  } catch {
    return String(err);
  }
}

class Worker extends EventEmitter {
  /**
   * @param {import('../index').WorkerOptions} [opts]
   */
  constructor(opts = {}) {
    super();
    const known = ['connectionString', 'connection', 'pool', 'queues', 'tasks', 'batchSize',
      'concurrency', 'pollInterval', 'heartbeatInterval', 'name', 'retry'];
    for (const k of Object.keys(opts)) {
      if (!known.includes(k)) throw new TypeError(`unknown Worker option ${JSON.stringify(k)} (known: ${known.join(', ')})`);
    }
    const positive = (v, what, dflt) => {
      if (v === undefined) return dflt;
      if (!Number.isInteger(v) || v < 1) throw new TypeError(`${what} must be a positive integer`);
      return v;
    };
    this.concurrency = positive(opts.concurrency, 'concurrency', 10);
    this.batchSize = positive(opts.batchSize, 'batchSize', this.concurrency);
    this.pollInterval = positive(opts.pollInterval, 'pollInterval', 5000);
    this.heartbeatInterval = positive(opts.heartbeatInterval, 'heartbeatInterval', 30000);
    this.queues = opts.queues ? Array.from(opts.queues) : null;
    this.name = opts.name || `node ${os.hostname()} pid ${process.pid}`;
    this._explicitTasks = opts.tasks ? Array.from(opts.tasks) : null;
    this._retry = { attempts: 5, baseDelay: 20, maxDelay: 1000, ...(opts.retry || {}) };

    if (opts.pool) {
      this.pool = opts.pool;
      this._ownPool = false;
      // the LISTEN connection is a client of its own, with the pool's settings
      this._clientConfig = opts.connection || opts.pool.options || {};
    } else {
      this._clientConfig = opts.connection || (opts.connectionString ? { connectionString: opts.connectionString } : {});
      this.pool = new pg.Pool({ ...this._clientConfig, max: this.concurrency + 2 });
      this._ownPool = true;
      this.pool.on('error', (err) => this._report(err, 'idle pool connection'));
    }

    /** @type {Map<string, Function>} */
    this._tasks = new Map();
    this._buffer = [];          // fetched, not started
    this._running = new Map();  // id text -> entry
    this._started = false;
    this._stopping = false;
    this._stopPromise = null;
    this._woken = false;
    this._resolveWait = null;
    this._listener = null;
    this._heartbeatTimer = null;
    this._signalHandlers = null;
  }

  /**
   * Registers the function that runs jobs of `name`: async fn(job, ctx),
   * whose return value becomes the job's result (JSON), and whose throw
   * fails the attempt.
   * @param {string} name
   * @param {(job: import('../index').Job, ctx: import('../index').JobContext) => any} fn
   * @returns {this}
   */
  task(name, fn) {
    if (typeof name !== 'string' || typeof fn !== 'function') throw new TypeError('task(name, async fn(job, ctx))');
    if (this._started) throw new Error('register tasks before start()');
    this._tasks.set(name, fn);
    return this;
  }

  /** The tasks this worker fetches. */
  get tasks() {
    return this._explicitTasks || Array.from(this._tasks.keys());
  }

  /**
   * Connects the LISTEN connection (before the first fetch, so that no
   * notification sent after that fetch is missed), then runs the loop in
   * the background. Resolves once listening.
   */
  async start() {
    if (this._started || this._stopping) throw new Error('this worker was started (or stopped) already');
    if (this.tasks.length === 0) throw new Error('no tasks: register some with worker.task(name, fn) first');
    this._started = true;
    try {
      await this._listen();
    } catch (err) {
      this._started = false;
      if (this._ownPool) await this.pool.end().catch(() => {});
      throw err;
    }
    if (this._stopping) { // stop() came while connecting
      const l = this._listener;
      this._listener = null;
      if (l) await l.end().catch(() => {});
      return;
    }
    this._scheduleHeartbeat();
    this._loopPromise = this._loop();
    this._loopPromise.catch((err) => this._report(err, 'worker loop'));
  }

  /** start(), then resolves when the worker has stopped. */
  async run() {
    await this.start();
    await this._loopPromise;
    await this.stop();
  }

  /**
   * Stops fetching, hands the fetched jobs that have not started back
   * (procq.release_job), waits for the running ones to finish, and closes
   * the connections it opened. Resolves when all that is done.
   * @returns {Promise<void>}
   */
  stop() {
    if (!this._stopPromise) {
      this._stopping = true;
      this.emit('stopping');
      this._wake();
      this._stopPromise = this._shutdown();
    }
    return this._stopPromise;
  }

  /**
   * Installs handlers that call stop() on the given signals (by default
   * SIGTERM and SIGINT), removed again once the worker has stopped; the
   * process then exits by itself when nothing else keeps it alive (exit
   * code 0). Returns a function that removes them.
   * @param {NodeJS.Signals[]} [signals]
   * @returns {() => void}
   */
  handleSignals(signals = ['SIGTERM', 'SIGINT']) {
    const handler = (sig) => {
      this.emit('signal', sig);
      this.stop().catch((err) => this._report(err, 'stop'));
    };
    for (const s of signals) process.on(s, handler);
    const remove = () => { for (const s of signals) process.removeListener(s, handler); };
    this._signalHandlers = remove;
    return remove;
  }

  // ---- internals -----------------------------------------------------------

  async _shutdown() {
    if (this._loopPromise) await this._loopPromise.catch(() => {});
    if (this._heartbeatTimer) clearTimeout(this._heartbeatTimer);
    this._heartbeatTimer = null;
    if (this._listener) {
      const l = this._listener;
      this._listener = null;
      await l.end().catch(() => {});
    }
    if (this._ownPool) await this.pool.end().catch(() => {});
    if (this._signalHandlers) this._signalHandlers();
    this.emit('stopped');
  }

  _report(err, context) {
    if (this.listenerCount('error') > 0) {
      if (err && typeof err === 'object') err.context = context;
      this.emit('error', err);
    } else {
      console.error(`procq worker ${this.name}: ${context}:`, err);
    }
  }

  _sql(fn) {
    return withRetry(fn, {
      ...this._retry,
      onRetry: (err, attempt, delay) => this.emit('retry', err, attempt, delay),
    });
  }

  /** Wakes the loop (a notification, a free slot, a stop). */
  _wake() {
    this._woken = true;
    if (this._resolveWait) this._resolveWait();
  }

  /** Waits for _wake() or ms, whichever first (at once if woken since the last wait). */
  async _wait(ms) {
    if (!this._woken) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, ms);
        this._resolveWait = () => { clearTimeout(timer); resolve(); };
      });
      this._resolveWait = null;
    }
    this._woken = false;
  }

  /** Opens the LISTEN connection, and again when it is lost. */
  async _listen() {
    const client = new pg.Client(this._clientConfig);
    client.on('notification', (msg) => {
      if (msg.channel !== 'procq') return;
      if (this.queues && !this.queues.includes(msg.payload)) return;
      this.emit('notification', msg.payload);
      this._wake();
    });
    let lost = false;
    const onLost = (err) => {
      if (lost) return;
      lost = true;
      if (this._listener === client) this._listener = null;
      if (this._stopping) return;
      if (err) this._report(err, 'LISTEN connection');
      client.end().catch(() => {});
      this._relisten(1000);
    };
    client.on('error', onLost);
    client.on('end', () => onLost(null));
    await client.connect();
    await client.query('LISTEN procq');
    this._listener = client;
  }

  /** Reconnects the LISTEN connection after a pause; fetches once it is back. */
  _relisten(delay) {
    setTimeout(async () => {
      if (this._stopping) return;
      try {
        await this._listen();
        this._wake(); // notifications may have been missed meanwhile
      } catch (err) {
        this._report(err, 'LISTEN reconnect');
        this._relisten(Math.min(delay * 2, 30000));
      }
    }, delay).unref();
  }

  async _loop() {
    while (!this._stopping) {
      while (this._buffer.length && this._running.size < this.concurrency) {
        this._startJob(this._buffer.shift());
      }
      if (this._buffer.length || this._running.size >= this.concurrency) {
        await this._wait(this.pollInterval); // until a slot frees
        continue;
      }
      this._woken = false;
      let jobs;
      try {
        jobs = await this._sql(() => api.fetchJobs(this.pool, this.batchSize,
          { queues: this.queues, worker: this.name, tasks: this.tasks }));
      } catch (err) {
        this._report(err, 'fetch_jobs');
        await this._wait(Math.min(this.pollInterval, 1000));
        continue;
      }
      this.emit('fetched', jobs);
      this._buffer.push(...jobs);
      if (jobs.length === 0 && !this._stopping) {
        this.emit('idle');
        await this._wait(this.pollInterval);
      }
    }
    await this._releaseBuffered();
    await Promise.allSettled(Array.from(this._running.values(), (e) => e.promise));
  }

  /** Hands the fetched jobs that have not started back to todo. */
  async _releaseBuffered() {
    const jobs = this._buffer.splice(0);
    for (const job of jobs) {
      try {
        const status = await this._sql(() => api.releaseJob(this.pool, job.id, job.attempts));
        if (status === 'todo') {
          this.emit('released', job);
        } else {
          // another todo job took its queueing lock meanwhile: procq ended
          // it failed (its error says why) instead of handing it back
          this._report(new Error(`job ${job.id} could not be released: it is ${status} now`),
            `release_job(${job.id})`);
        }
      } catch (err) {
        if (err && (err.code === LEASE_LOST || err.code === JOB_ABORTED)) continue; // not ours any more
        this._report(err, `release_job(${job.id})`);
      }
    }
  }

  _startJob(job) {
    const key = job.id.toString();
    const entry = {
      job,
      attempt: job.attempts,
      controller: new AbortController(),
      lost: false,
      aborted: false,
      returned: false, // the function has settled: its signal no longer fires
      promise: null,
    };
    this._running.set(key, entry);
    entry.promise = this._runJob(entry).finally(() => {
      this._running.delete(key);
      this._wake();
    });
  }

  async _runJob(entry) {
    const { job } = entry;
    const fn = this._tasks.get(job.task);
    const ctx = {
      signal: entry.controller.signal,
      attempt: entry.attempt,
      worker: this.name,
      pool: this.pool,
      heartbeat: () => this._heartbeatOne(entry),
    };
    this.emit('jobStart', job);
    let outcome;
    if (!fn) {
      outcome = { status: 'failed', error: `no function for task ${JSON.stringify(job.task)} in worker ${this.name}` };
    } else {
      try {
        const result = await fn(job, ctx);
        outcome = { status: 'succeeded', result: result === undefined ? null : result };
      } catch (err) {
        outcome = { status: 'failed', error: errorText(err) };
      }
    }
    entry.returned = true;
    if (entry.lost || entry.aborted) {
      this.emit(entry.lost ? 'leaseLost' : 'aborted', job);
      return;
    }
    try {
      const status = await this._sql(() => api.finishJob(this.pool, job.id, outcome.status, {
        result: outcome.result, error: outcome.error, attempt: entry.attempt,
      }));
      this.emit('jobDone', job, status, outcome);
    } catch (err) {
      if (err && err.code === LEASE_LOST) this.emit('leaseLost', job);
      else if (err && err.code === JOB_ABORTED) this.emit('aborted', job);
      else this._report(err, `finish_job(${job.id})`);
    }
  }

  /** Heartbeats one held job; PQ001/PQ002 fire its signal. */
  async _heartbeatOne(entry) {
    try {
      return await this._sql(() => api.heartbeat(this.pool, entry.job.id, entry.attempt));
    } catch (err) {
      // A heartbeat racing with the job's own finish_job also sees PQ001:
      // a function that has returned is never told to stop (it might undo
      // a success).
      if (err && err.code === LEASE_LOST) {
        entry.lost = true;
        if (!entry.returned) entry.controller.abort(new LeaseLostError(entry.job.id));
      } else if (err && err.code === JOB_ABORTED) {
        entry.aborted = true;
        if (!entry.returned) entry.controller.abort(new JobAbortedError(entry.job.id));
      }
      throw err;
    }
  }

  _scheduleHeartbeat() {
    this._heartbeatTimer = setTimeout(async () => {
      await this._heartbeatAll();
      if (this._heartbeatTimer) this._scheduleHeartbeat();
    }, this.heartbeatInterval);
  }

  /** Heartbeats every held job: running ones and fetched ones waiting for a slot. */
  async _heartbeatAll() {
    const running = Array.from(this._running.values());
    await Promise.all(running.map((e) => this._heartbeatOne(e).catch((err) => {
      if (!err || (err.code !== LEASE_LOST && err.code !== JOB_ABORTED)) this._report(err, `heartbeat(${e.job.id})`);
    })));
    for (const job of this._buffer.slice()) {
      try {
        await this._sql(() => api.heartbeat(this.pool, job.id, job.attempts));
      } catch (err) {
        if (err && (err.code === LEASE_LOST || err.code === JOB_ABORTED)) {
          const i = this._buffer.indexOf(job);
          if (i >= 0) this._buffer.splice(i, 1); // not ours any more: never start it
        } else {
          this._report(err, `heartbeat(${job.id})`);
        }
      }
    }
  }
}

module.exports = { Worker, JobAbortedError, LeaseLostError, LEASE_LOST, JOB_ABORTED };
