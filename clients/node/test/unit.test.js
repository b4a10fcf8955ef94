'use strict';
// Unit tests without a database: ids, JSON text, the retry wrapper.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { toIdText, toIdTexts, toJsonText } = require('../lib/values');
const { withRetry, isRetryable } = require('../lib/retry');

test('ids: BigInt, safe numbers and decimal strings go in exactly', () => {
  assert.equal(toIdText(9007199254740993n), '9007199254740993');
  assert.equal(toIdText('9223372036854775807'), '9223372036854775807');
  assert.equal(toIdText(42), '42');
  assert.deepEqual(toIdTexts([1, 2n, '3']), ['1', '2', '3']);
});

test('ids: an unsafe number, a non-integer or an out-of-range value is refused, never rounded', () => {
  assert.throws(() => toIdText(2 ** 53 + 2), /BigInt or decimal string above 2\^53/);
  assert.throws(() => toIdText(1.5), TypeError);
  assert.throws(() => toIdText('12abc'), TypeError);
  assert.throws(() => toIdText(null), TypeError);
  assert.throws(() => toIdText(1n << 63n), RangeError);
  assert.throws(() => toIdTexts('123'), TypeError);
});

test('jsonb text: arrays stay JSON arrays, BigInts keep all their digits', () => {
  assert.equal(toJsonText([1, 2]), '[1,2]');
  assert.equal(toJsonText({ id: 9007199254740993n, l: [1n] }), '{"id":9007199254740993,"l":[1]}');
  assert.equal(toJsonText(undefined), 'null');
  assert.equal(toJsonText('procq:bigint:1'), '"procq:bigint:1"'); // a plain string is left alone
});

const fake = (code) => Object.assign(new Error(`fake ${code}`), { code });

test('withRetry runs again on 40001 and 40P01, with growing pauses, then succeeds', async () => {
  const pauses = [];
  let calls = 0;
  const v = await withRetry(async () => {
    calls++;
    if (calls === 1) throw fake('40001');
    if (calls === 2) throw fake('40P01');
    return 'done';
  }, { baseDelay: 100, maxDelay: 1000, sleep: async (ms) => { pauses.push(ms); } });
  assert.equal(v, 'done');
  assert.equal(calls, 3);
  assert.equal(pauses.length, 2);
  assert.ok(pauses[0] >= 50 && pauses[0] <= 100, `first pause ${pauses[0]}`);
  assert.ok(pauses[1] >= 100 && pauses[1] <= 200, `second pause ${pauses[1]}`);
});

test('withRetry gives up after its attempts, and never retries other errors', async () => {
  let calls = 0;
  await assert.rejects(withRetry(async () => { calls++; throw fake('40P01'); },
    { attempts: 3, sleep: async () => {} }), { code: '40P01' });
  assert.equal(calls, 3);
  calls = 0;
  await assert.rejects(withRetry(async () => { calls++; throw fake('23505'); },
    { sleep: async () => {} }), { code: '23505' });
  assert.equal(calls, 1);
  const pauses = [];
  await assert.rejects(withRetry(async () => { throw fake('40001'); },
    { attempts: 10, baseDelay: 100, maxDelay: 300, sleep: async (ms) => { pauses.push(ms); } }));
  assert.ok(pauses.every((p) => p <= 300), `pauses bounded by maxDelay: ${pauses}`);
  assert.ok(isRetryable(fake('40001')) && !isRetryable(fake('PQ001')) && !isRetryable(null));
});
