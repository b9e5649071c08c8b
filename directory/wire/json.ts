// The metadata API's JSON on the wire, both ways (client.ts, server.ts, the Raft log). JSON
// cannot carry bigints, so they travel as {"$bigint": "<decimal>"}.
import { hasWireJson, WIRE_JSON } from '../engine/object-listing.ts';

const BIGINT_TAG = '$bigint';

// Object keys that start with "$" in the data (user metadata names can) get one more "$"
// on the wire, so a single-key {"$bigint": …} object can only be an encoded bigint.
const escapeKeys = (o: Record<string, unknown>, add: boolean): Record<string, unknown> => {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[k[0] === '$' ? (add ? `$${k}` : k.slice(1)) : k] = v;
  return out;
};

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

const replacer = (_k: string, v: unknown) => {
  if (typeof v === 'bigint') return { [BIGINT_TAG]: v.toString() };
  if (isPlainObject(v) && Object.keys(v).some((k) => k[0] === '$')) return escapeKeys(v, true);
  return v;
};

const reviver = (_k: string, v: unknown) => {
  if (!isPlainObject(v)) return v;
  const keys = Object.keys(v);
  if (keys.length === 1 && keys[0] === BIGINT_TAG) {
    const tagged = v[BIGINT_TAG];
    if (typeof tagged === 'string' && /^-?\d{1,40}$/.test(tagged)) return BigInt(tagged);
  }
  return keys.some((k) => k[0] === '$') ? escapeKeys(v, false) : v;
};

/**
 * JSON.stringify with bigints as {"$bigint": "<decimal>"} (and "$…" keys escaped). A result
 * that carries its wire JSON already (WIRE_JSON: a listing page still in stored form) gives
 * that instead; only at the top level, which is where the server's results are.
 */
export function encodeJson(value: unknown): string {
  if (hasWireJson(value)) {
    const text = value[WIRE_JSON](encodeJson);
    if (text !== undefined) return text;
  }
  // Fast path without a replacer call per value: only a bigint makes stringify throw, and
  // only a string starting with "$" can be a key that needs escaping.
  try {
    const text = JSON.stringify(value);
    if (!text?.includes('"$')) return text;
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
  }
  return JSON.stringify(value, replacer);
}

/** JSON.parse turning {"$bigint": "<decimal>"} back into bigints (and unescaping keys). */
export function decodeJson(text: string): unknown {
  return text.includes('"$') ? JSON.parse(text, reviver) : JSON.parse(text);
}
