// Types of procq's Node client (index.js, CommonJS).
import type { EventEmitter } from 'node:events';
import type { Pool, ClientConfig } from 'pg';

/** Anything with pg's query(): a pg.Client, a pg.Pool, a pool client. */
export interface Queryable {
  query(text: string, values?: any[]): Promise<any>;
}

/** An id going in: a BigInt, a safe-integer number or a decimal string. Ids coming out are always BigInt. */
export type IdInput = bigint | number | string;

export type JobStatus = 'todo' | 'doing' | 'succeeded' | 'failed' | 'cancelled';
export type RunAfter = 'success' | 'completion' | 'failure';

/** A row of procq.jobs, keys in camelCase, bigint columns as BigInt. */
export interface Job {
  id: bigint;
  queue: string;
  task: string;
  args: any;
  status: JobStatus;
  priority: number;
  scheduledAt: Date | null;
  attempts: number;
  maxAttempts: number;
  lock: string | null;
  queueingLock: string | null;
  result: any;
  error: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  worker: string | null;
  deferredBy: string;
  pendingParents: number;
  leaseExpiresAt: Date | null;
  cancelledBy: bigint | null;
  runAfter: RunAfter;
  workflowId: bigint;
  stepKey: string | null;
  [column: string]: any;
}

export interface DeferOptions {
  task: string;
  args?: any;
  queue?: string;
  priority?: number;
  scheduledAt?: Date | string;
  dependsOn?: IdInput[];
  maxAttempts?: number;
  lock?: string;
  queueingLock?: string;
  runAfter?: RunAfter;
  workflowId?: IdInput;
}

export interface DeferJobsOptions extends Omit<DeferOptions, 'args' | 'queueingLock'> {
  /** one job per element */
  args: any[];
}

export interface WorkflowStep {
  key: string;
  task: string;
  args?: any;
  queue?: string;
  priority?: number;
  scheduledAt?: Date | string;
  /** step keys (strings) and ids of existing jobs (BigInt or number) */
  dependsOn?: (string | bigint | number)[];
  maxAttempts?: number;
  lock?: string;
  queueingLock?: string;
  runAfter?: RunAfter;
}

export function defer(client: Queryable, opts: DeferOptions): Promise<bigint>;
export function deferJobs(client: Queryable, opts: DeferJobsOptions): Promise<bigint[]>;
export function deferWorkflow(client: Queryable, steps: WorkflowStep[], opts?: { workflowId?: IdInput }): Promise<Record<string, bigint>>;
export function getJob(client: Queryable, id: IdInput): Promise<Job>;
export function waitJob(client: Queryable, id: IdInput, opts?: { timeout?: number | string }): Promise<Job>;
export function cancelJob(client: Queryable, id: IdInput, opts?: { abort?: boolean }): Promise<boolean>;
export function retryJob(client: Queryable, id: IdInput, opts?: { scheduledAt?: Date | string }): Promise<void>;
export function fetchJobs(client: Queryable, n: number, opts?: { queues?: string[] | null; worker?: string | null; tasks?: string[] | null }): Promise<Job[]>;
export function finishJob(client: Queryable, id: IdInput, status: 'succeeded' | 'failed' | 'cancelled', opts?: { result?: any; error?: string; attempt?: number }): Promise<JobStatus>;
export function heartbeat(client: Queryable, id: IdInput, attempt?: number): Promise<Date>;
export function releaseJob(client: Queryable, id: IdInput, attempt?: number): Promise<'todo' | 'failed'>;

export interface JobContext {
  /** fires when the job is aborted (reason: JobAbortedError) or its lease is lost (LeaseLostError); seen at the next heartbeat */
  signal: AbortSignal;
  /** the attempt this run is (jobs.attempts of the fetched row) */
  attempt: number;
  worker: string;
  pool: Pool;
  /** heartbeat now (rejects with PQ001/PQ002, and fires signal, when the job is no longer ours) */
  heartbeat(): Promise<Date>;
}

export interface WorkerOptions {
  connectionString?: string;
  /** pg client settings (instead of connectionString) */
  connection?: ClientConfig;
  /** a pool of yours (the worker does not end it); the LISTEN connection uses pool.options */
  pool?: Pool;
  queues?: string[];
  /** the tasks to fetch; default: the registered ones */
  tasks?: string[];
  /** jobs per fetch_jobs (default: concurrency) */
  batchSize?: number;
  /** jobs run at once (default 10) */
  concurrency?: number;
  /** ms between fetches when idle (default 5000) */
  pollInterval?: number;
  /** ms between heartbeats of held jobs (default 30000; keep it well under procq.lease_duration) */
  heartbeatInterval?: number;
  /** the worker name recorded on its jobs */
  name?: string;
  /** retries of its own statements on 40001/40P01 */
  retry?: { attempts?: number; baseDelay?: number; maxDelay?: number };
}

export class Worker extends EventEmitter {
  constructor(opts?: WorkerOptions);
  readonly name: string;
  readonly pool: Pool;
  readonly tasks: string[];
  task(name: string, fn: (job: Job, ctx: JobContext) => any): this;
  start(): Promise<void>;
  run(): Promise<void>;
  stop(): Promise<void>;
  handleSignals(signals?: NodeJS.Signals[]): () => void;
}

export class JobAbortedError extends Error { code: 'PQ002'; }
export class LeaseLostError extends Error { code: 'PQ001'; }
export const LEASE_LOST: 'PQ001';
export const JOB_ABORTED: 'PQ002';
export function isLeaseLost(err: unknown): boolean;
export function isJobAborted(err: unknown): boolean;
export function isRetryable(err: unknown): boolean;
export function withRetry<T>(fn: () => Promise<T>, opts?: { attempts?: number; baseDelay?: number; maxDelay?: number; sleep?: (ms: number) => Promise<void>; onRetry?: (err: any, attempt: number, delay: number) => void }): Promise<T>;
export function toJsonText(value: unknown): string;
