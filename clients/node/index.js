'use strict';
// procq's Node client, CommonJS (`import { defer, Worker } from 'procq'`
// works from ESM too: the names below are plain properties so that Node
// finds them). See README.md.

const {
  defer, deferJobs, deferWorkflow, getJob, waitJob, cancelJob, retryJob,
  fetchJobs, finishJob, heartbeat, releaseJob,
} = require('./lib/api');
const { Worker, JobAbortedError, LeaseLostError, LEASE_LOST, JOB_ABORTED } = require('./lib/worker');
const { withRetry, isRetryable } = require('./lib/retry');
const { toJsonText } = require('./lib/values');

/** True when err is procq's "lease lost" (PQ001): drop the job's result. */
const isLeaseLost = (err) => !!err && err.code === LEASE_LOST;
/** True when err is procq's "job aborted" (PQ002): stop the job. */
const isJobAborted = (err) => !!err && err.code === JOB_ABORTED;

module.exports = {
  defer,
  deferJobs,
  deferWorkflow,
  getJob,
  waitJob,
  cancelJob,
  retryJob,
  fetchJobs,
  finishJob,
  heartbeat,
  releaseJob,
  Worker,
  JobAbortedError,
  LeaseLostError,
  LEASE_LOST,
  JOB_ABORTED,
  isLeaseLost,
  isJobAborted,
  withRetry,
  isRetryable,
  toJsonText,
};
