'use strict';
// The producer's side of procq and the statements a worker needs, each one
// SQL function call. `client` is anything with pg's query(): a pg.Client, a
// pg.Pool, or a pool client inside your own transaction (then the job is
// deferred, or not, with the rest of that transaction).

const { toIdText, toIdTexts, toJsonText, convertRows } = require('./values');

/**
 * How each option of defer / deferJobs goes into SQL: the SQL argument's
 * name, and how to send the value.
 */
const OPTIONS = {
  task: ['task', 'text'],
  args: ['args', 'jsonb'],
  queue: ['queue', 'text'],
  priority: ['priority', 'int'],
  scheduledAt: ['scheduled_at', 'timestamptz'],
  dependsOn: ['depends_on', 'ids'],
  maxAttempts: ['max_attempts', 'int'],
  lock: ['lock', 'text'],
  queueingLock: ['queueing_lock', 'text'],
  runAfter: ['run_after', 'text'],
  workflowId: ['workflow_id', 'id'],
};

/** The step fields of defer_workflow, camelCase -> the SQL name. */
const STEP_FIELDS = {
  dependsOn: 'depends_on',
  maxAttempts: 'max_attempts',
  scheduledAt: 'scheduled_at',
  queueingLock: 'queueing_lock',
  runAfter: 'run_after',
};

function checkClient(client) {
  if (!client || typeof client.query !== 'function') {
    throw new TypeError('the first argument must be a pg Client or Pool (something with query())');
  }
}

/**
 * Named arguments for a procq function from an options object: only the
 * options given (undefined ones keep the SQL default; null sends NULL).
 * @returns {{sql: string[], params: any[]}}
 */
function namedArgs(opts, allowed, params = []) {
  const sql = [];
  for (const [key, value] of Object.entries(opts)) {
    if (!allowed.includes(key)) {
      throw new TypeError(`unknown option ${JSON.stringify(key)} (known: ${allowed.join(', ')})`);
    }
    if (value === undefined) continue;
    const [name, kind] = OPTIONS[key];
    let param;
    let cast;
    if (value === null) {
      param = null;
      cast = { jsonb: 'jsonb', ids: 'bigint[]', id: 'bigint', int: 'integer' }[kind] || kind;
    } else if (kind === 'jsonb') {
      param = toJsonText(value);
      cast = 'jsonb';
    } else if (kind === 'ids') {
      param = toIdTexts(value, key);
      cast = 'bigint[]';
    } else if (kind === 'id') {
      param = toIdText(value, key);
      cast = 'bigint';
    } else if (kind === 'int') {
      if (!Number.isInteger(value)) throw new TypeError(`${key} must be an integer`);
      param = value;
      cast = 'integer';
    } else if (kind === 'timestamptz') {
      if (!(value instanceof Date) && typeof value !== 'string') {
        throw new TypeError(`${key} must be a Date or a timestamp string`);
      }
      param = value;
      cast = 'timestamptz';
    } else {
      if (typeof value !== 'string') throw new TypeError(`${key} must be a string`);
      param = value;
      cast = 'text';
    }
    params.push(param);
    sql.push(`${name} => $${params.length}::${cast}`);
  }
  return { sql, params };
}

const DEFER_OPTIONS = Object.keys(OPTIONS);

/**
 * Defers one job; resolves to its id (a BigInt).
 * @param {{query: Function}} client
 * @param {import('../index').DeferOptions} opts
 * @returns {Promise<bigint>}
 */
async function defer(client, opts) {
  checkClient(client);
  if (!opts || typeof opts.task !== 'string') throw new TypeError('defer needs a task (a string)');
  const { sql, params } = namedArgs(opts, DEFER_OPTIONS);
  const res = await client.query(`SELECT procq.defer(${sql.join(', ')}) AS id`, params);
  return convertRows(res)[0].id;
}

const DEFER_JOBS_OPTIONS = DEFER_OPTIONS.filter((k) => k !== 'queueingLock');

/**
 * Defers one job per element of opts.args, all alike (a fan-out); resolves
 * to their ids, in the order of args.
 * @param {{query: Function}} client
 * @param {import('../index').DeferJobsOptions} opts
 * @returns {Promise<bigint[]>}
 */
async function deferJobs(client, opts) {
  checkClient(client);
  if (!opts || typeof opts.task !== 'string') throw new TypeError('deferJobs needs a task (a string)');
  if (!Array.isArray(opts.args)) throw new TypeError('deferJobs needs args: an array, one element per job');
  const { args, ...rest } = opts;
  // jsonb[]: an array of JSON texts, each element cast; a null element goes
  // as SQL NULL, which procq refuses (22004).
  const params = [args.map((a) => (a === null || a === undefined ? null : toJsonText(a)))];
  const { sql } = namedArgs(rest, DEFER_JOBS_OPTIONS, params);
  const res = await client.query(
    `SELECT id FROM procq.defer_jobs(args => $1::text[]::jsonb[]${sql.length ? ', ' + sql.join(', ') : ''}) AS t(id)`,
    params);
  return convertRows(res).map((r) => r.id);
}

/**
 * Defers a DAG as one workflow (all or nothing); resolves to {key: id}.
 * Steps are objects with key, task and any of args, queue, priority,
 * scheduledAt, dependsOn (step keys, and ids of existing jobs), maxAttempts,
 * lock, queueingLock, runAfter (camelCase or the SQL's snake_case names).
 * @param {{query: Function}} client
 * @param {import('../index').WorkflowStep[]} steps
 * @param {{workflowId?: bigint|number|string}} [opts]
 * @returns {Promise<Record<string, bigint>>}
 */
async function deferWorkflow(client, steps, opts = {}) {
  checkClient(client);
  if (!Array.isArray(steps)) throw new TypeError('deferWorkflow needs an array of steps');
  const sqlSteps = steps.map((step) => {
    if (!step || typeof step !== 'object') throw new TypeError('each step must be an object');
    const out = {};
    for (const [k, v] of Object.entries(step)) {
      if (v === undefined) continue;
      const name = STEP_FIELDS[k] || k;
      if (name === 'depends_on' && Array.isArray(v)) {
        // strings are step keys; numbers and BigInts are job ids (checked)
        out[name] = v.map((d) => (typeof d === 'string' ? d : BigInt(toIdText(d, 'dependsOn'))));
      } else {
        out[name] = v;
      }
    }
    return out;
  });
  const params = [toJsonText(sqlSteps)];
  let extra = '';
  if (opts.workflowId !== undefined && opts.workflowId !== null) {
    params.push(toIdText(opts.workflowId, 'workflowId'));
    extra = ', workflow_id => $2::bigint';
  }
  const res = await client.query(
    `SELECT key, job_id FROM procq.defer_workflow($1::jsonb${extra})`, params);
  return Object.fromEntries(convertRows(res).map((r) => [r.key, r.jobId]));
}

function oneJob(res) {
  const rows = convertRows(res);
  return rows.length ? rows[0] : null;
}

/**
 * The job's row as it is now (P0002 when there is none).
 * @returns {Promise<import('../index').Job>}
 */
async function getJob(client, id) {
  checkClient(client);
  return oneJob(await client.query('SELECT * FROM procq.get_job($1::bigint)', [toIdText(id)]));
}

/**
 * Waits until the job has ended or `timeout` (milliseconds, or an interval
 * string such as '5 minutes') has passed, then its row: see its status.
 * @returns {Promise<import('../index').Job>}
 */
async function waitJob(client, id, opts = {}) {
  checkClient(client);
  const params = [toIdText(id)];
  let extra = '';
  if (opts.timeout !== undefined && opts.timeout !== null) {
    if (typeof opts.timeout === 'number') {
      params.push(opts.timeout / 1000);
      extra = ', timeout => make_interval(secs => $2::float8)';
    } else {
      params.push(String(opts.timeout));
      extra = ', timeout => $2::interval';
    }
  }
  return oneJob(await client.query(`SELECT * FROM procq.wait_job($1::bigint${extra})`, params));
}

/**
 * Cancels a todo job (and its waiting descendants); with abort: true, a
 * running one too. Resolves to false when there was nothing to cancel.
 * @returns {Promise<boolean>}
 */
async function cancelJob(client, id, opts = {}) {
  checkClient(client);
  const res = await client.query('SELECT procq.cancel_job($1::bigint, abort => $2::boolean) AS ok',
    [toIdText(id), !!opts.abort]);
  return res.rows[0].ok;
}

/**
 * A failed or cancelled job (and the descendants it cancelled) back to todo.
 * @returns {Promise<void>}
 */
async function retryJob(client, id, opts = {}) {
  checkClient(client);
  const params = [toIdText(id)];
  let extra = '';
  if (opts.scheduledAt !== undefined && opts.scheduledAt !== null) {
    params.push(opts.scheduledAt);
    extra = ', scheduled_at => $2::timestamptz';
  }
  await client.query(`SELECT procq.retry_job($1::bigint${extra})`, params);
}

// ---- what a worker calls ---------------------------------------------------

/**
 * Up to n ready jobs, now doing in this worker's name.
 * @returns {Promise<import('../index').Job[]>}
 */
async function fetchJobs(client, n, opts = {}) {
  checkClient(client);
  const res = await client.query(
    'SELECT * FROM procq.fetch_jobs($1::integer, queues => $2::text[], worker => $3::text, tasks => $4::text[])',
    [n, opts.queues ?? null, opts.worker ?? null, opts.tasks ?? null]);
  return convertRows(res);
}

/**
 * Ends a doing job in `attempt`: status 'succeeded' (with result),
 * 'failed' (with error; retried while attempts are left) or 'cancelled'.
 * Resolves to the status it ended in ('todo': retried). PQ001/PQ002 when
 * the attempt is no longer current / was aborted.
 * @returns {Promise<string>}
 */
async function finishJob(client, id, status, opts = {}) {
  checkClient(client);
  const res = await client.query(
    'SELECT procq.finish_job($1::bigint, $2::procq.job_status, result => $3::jsonb, error => $4::text, attempt => $5::integer) AS status',
    [toIdText(id), status, opts.result === undefined ? null : toJsonText(opts.result),
      opts.error ?? null, opts.attempt ?? null]);
  return res.rows[0].status;
}

/**
 * Extends a running job's lease; resolves to the new expiry.
 * @returns {Promise<Date>}
 */
async function heartbeat(client, id, attempt) {
  checkClient(client);
  const res = await client.query('SELECT procq.heartbeat($1::bigint, attempt => $2::integer) AS until',
    [toIdText(id), attempt ?? null]);
  return res.rows[0].until;
}

/**
 * Hands a doing job back to todo without using up an attempt (what a worker
 * does on shutdown with the jobs it fetched and has not finished).
 * @returns {Promise<string>} the status the job was left in: 'todo', or
 *   'failed' when another todo job took its queueing lock meanwhile (its
 *   error says so)
 */
async function releaseJob(client, id, attempt) {
  checkClient(client);
  const { rows } = await client.query(
    'SELECT procq.release_job($1::bigint, attempt => $2::integer)::text AS status',
    [toIdText(id), attempt ?? null]);
  return rows[0].status;
}

module.exports = {
  defer, deferJobs, deferWorkflow, getJob, waitJob, cancelJob, retryJob,
  fetchJobs, finishJob, heartbeat, releaseJob,
};
