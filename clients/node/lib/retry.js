'use strict';
// Retrying a statement that PostgreSQL refused for a reason that goes away
// by itself: a serialization failure (40001) or a deadlock (40P01). Every
// statement the worker runs is a single autocommit statement that changed
// nothing when it failed, so running it again is safe.

/** SQLSTATEs worth running the same statement again for. */
const RETRYABLE = new Set(['40001', '40P01']);

/** @param {unknown} err */
function isRetryable(err) {
  return !!err && typeof err === 'object' && RETRYABLE.has(/** @type {any} */ (err).code);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs fn, and again after a growing pause while it fails with 40001 or
 * 40P01, at most `attempts` times in all; any other error, or the last
 * retryable one, is thrown as it is.
 * @template T
 * @param {() => Promise<T>} fn
 * @param {{attempts?: number, baseDelay?: number, maxDelay?: number,
 *          sleep?: (ms: number) => Promise<void>,
 *          onRetry?: (err: any, attempt: number, delay: number) => void}} [opts]
 * @returns {Promise<T>}
 */
async function withRetry(fn, opts = {}) {
  const attempts = opts.attempts ?? 5;
  const baseDelay = opts.baseDelay ?? 20;
  const maxDelay = opts.maxDelay ?? 1000;
  const pause = opts.sleep ?? sleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isRetryable(err) || attempt >= attempts) throw err;
      // Exponential backoff, bounded by maxDelay, with jitter (half to all of it).
      const cap = Math.min(maxDelay, baseDelay * 2 ** (attempt - 1));
      const delay = Math.round(cap / 2 + Math.random() * (cap / 2));
      if (opts.onRetry) opts.onRetry(err, attempt, delay);
      await pause(delay);
    }
  }
}

module.exports = { withRetry, isRetryable, RETRYABLE, sleep };
