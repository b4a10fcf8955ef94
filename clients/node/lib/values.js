'use strict';
// Values between JavaScript and procq: job ids (bigint), jsonb parameters,
// and job rows.
//
// Ids. procq's ids are PostgreSQL bigints (up to 2^63 - 1). pg returns int8
// as a decimal string (a JavaScript number is exact only up to 2^53), so this
// client turns every bigint column it reads into a BigInt, and accepts a
// BigInt, a safe-integer number or a decimal string wherever an id goes in.
// It sends ids as decimal strings with an explicit ::bigint cast, so nothing
// is ever rounded on the way in either.
//
// jsonb. pg sends a JavaScript array parameter as a PostgreSQL array literal
// ('{1,2}'), not as JSON, so `args: [1, 2]` passed raw to a jsonb parameter
// would become the wrong value or an error. This client always sends JSON
// text it serialized itself, cast with ::jsonb in the statement.

const INT8_OID = 20;
const INT8_ARRAY_OID = 1016;
const MAX_BIGINT = (1n << 63n) - 1n;
const MIN_BIGINT = -(1n << 63n);

/**
 * An id as the decimal string sent to PostgreSQL.
 * @param {bigint|number|string} value
 * @param {string} [what] the argument's name, for the error message
 * @returns {string}
 */
function toIdText(value, what = 'id') {
  let big;
  if (typeof value === 'bigint') {
    big = value;
  } else if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) {
      throw new TypeError(`${what} must be an integer (a BigInt or decimal string above 2^53), got ${value}`);
    }
    big = BigInt(value);
  } else if (typeof value === 'string' && /^-?[0-9]+$/.test(value.trim())) {
    big = BigInt(value.trim());
  } else {
    throw new TypeError(`${what} must be a BigInt, a safe integer or a decimal string, got ${typeof value === 'string' ? JSON.stringify(value) : typeof value}`);
  }
  if (big > MAX_BIGINT || big < MIN_BIGINT) {
    throw new RangeError(`${what} ${big} is out of range for a PostgreSQL bigint`);
  }
  return big.toString();
}

/**
 * A list of ids as an array of decimal strings (for a ::bigint[] parameter).
 * @param {Iterable<bigint|number|string>} values
 * @param {string} [what]
 * @returns {string[]}
 */
function toIdTexts(values, what = 'ids') {
  if (values == null || typeof values[Symbol.iterator] !== 'function' || typeof values === 'string') {
    throw new TypeError(`${what} must be an array of ids`);
  }
  return Array.from(values, (v, i) => toIdText(v, `${what}[${i}]`));
}

/** A BigInt read from PostgreSQL (int8 arrives as a decimal string). */
function readId(text) {
  return text == null ? null : BigInt(text);
}

const BIGINT_MARK = 'procq:bigint:';

/**
 * JSON text for a jsonb parameter. BigInt values become JSON numbers with
 * all their digits (PostgreSQL's jsonb keeps them exact); undefined becomes
 * null at the top level.
 * @param {unknown} value
 * @returns {string}
 */
function toJsonText(value) {
  if (value === undefined) return 'null';
  let marked = false;
  const text = JSON.stringify(value, (_key, v) => {
    if (typeof v === 'bigint') {
      marked = true;
      return BIGINT_MARK + v.toString();
    }
    return v;
  });
  if (text === undefined) {
    throw new TypeError(`cannot send ${typeof value} as JSON`);
  }
  if (!marked) return text;
  // The marks are strings of the replacer's making: "procq:bigint:123".
  return text.replace(/"procq:bigint:(-?[0-9]+)"/g, '$1');
}

/** snake_case -> camelCase */
function camel(name) {
  return name.replace(/_([a-z])/g, (_m, c) => c.toUpperCase());
}

/**
 * Rows of a pg result with camelCase keys and bigint columns as BigInt.
 * @param {import('pg').QueryResult} res
 * @returns {object[]}
 */
function convertRows(res) {
  const conv = res.fields.map((f) => ({
    from: f.name,
    to: camel(f.name),
    kind: f.dataTypeID === INT8_OID ? 'id' : f.dataTypeID === INT8_ARRAY_OID ? 'ids' : null,
  }));
  return res.rows.map((row) => {
    const out = {};
    for (const c of conv) {
      const v = row[c.from];
      if (c.kind === 'id') out[c.to] = readId(v);
      else if (c.kind === 'ids') out[c.to] = v == null ? null : v.map(readId);
      else out[c.to] = v;
    }
    return out;
  });
}

module.exports = { toIdText, toIdTexts, readId, toJsonText, convertRows, camel };
