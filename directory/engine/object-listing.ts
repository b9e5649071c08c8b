// LevelMetadata.listObjects, shaped for a directory replica that only forwards the page:
// the records stay the JSON text they are stored as until someone reads `objects`, and the
// metadata server's encodeJson splices that text into its answer (WIRE_JSON). Parsing each
// record only to stringify it again was most of the cost of serving a page.
import type {
  ListObjectsOptions,
  ListObjectsResult,
  ObjectRecord,
  ObjectSummary,
} from '../model/api.ts';
import { decodeObject, decodeSummary, recordJson, summaryJson } from '../model/object-codec.ts';
import { Cursor, type KeyEncoding } from './cursor.ts';
import * as K from './keys.ts';

/** Whole records, or listing summaries (object-codec.ts). */
export type PageForm = 'record' | 'summary';
type Item<F extends PageForm> = F extends 'summary' ? ObjectSummary : ObjectRecord;

const FORMS = {
  record: { decode: decodeObject, json: recordJson },
  summary: { decode: decodeSummary, json: summaryJson },
} as const;

import type { DB } from './writer.ts';

/**
 * A value that writes its own wire JSON: encodeJson (server.ts) calls this, with itself,
 * instead of stringifying the value, when the value is the top-level result. Undefined
 * means "stringify me as usual".
 */
export const WIRE_JSON = Symbol('wireJson');

export interface WireJson {
  [WIRE_JSON](encode: (v: unknown) => string | undefined): string | undefined;
}

export function hasWireJson(v: unknown): v is WireJson {
  return typeof v === 'object' && v !== null && WIRE_JSON in v;
}

// Bounds and seek targets go in as latin1 byte strings, like every database key here, but
// keys come out decoded from UTF-8 by the binding: the object range holds nothing else
// (bucket names and object keys enter through K.bytes), and it spares a Buffer and two
// conversions per key. Within it, UTF-8 is self-synchronizing, so prefix, delimiter and
// equality tests on the text agree with the same tests on the bytes.
const TEXT_KEYS: KeyEncoding = {
  name: 'latin1-in-utf8-out',
  format: 'utf8',
  encode: (s) => Buffer.from(s, 'latin1'),
  decode: (s) => s,
};

/** The common prefix `key` rolls up into: up to the first delimiter after the prefix. */
export function commonPrefix(
  key: string,
  prefixLength: number,
  delim: string | undefined,
): string | undefined {
  if (!delim) return undefined;
  const i = key.indexOf(delim, prefixLength);
  return i >= 0 ? key.slice(0, i + delim.length) : undefined;
}

/** The bucket must exist and maxKeys be valid (LevelMetadata.listObjects checks). */
export async function listObjectPage<F extends PageForm>(
  db: DB,
  bucket: string,
  opts: ListObjectsOptions,
  form: F,
): Promise<ListObjectsResult<Item<F>>> {
  const max = opts.maxKeys;
  if (max === 0) return { objects: [], commonPrefixes: [], isTruncated: false };
  const base = K.objectBase(bucket);
  const baseText = K.text(base);
  const prefixText = opts.prefix ?? '';
  const prefix = K.bytes(prefixText);
  const delim = opts.delimiter ?? '';
  if (delim) K.bytes(delim); // throws on a lone surrogate, like every name
  const afterText = opts.after || undefined;
  const after = afterText === undefined ? undefined : K.bytes(afterText);
  const lt = prefix ? base + K.successor(prefix) : K.successor(base);
  // Byte order, which JS string order is only for the latin1 forms.
  const lower =
    after !== undefined && after >= prefix ? { gt: base + after } : { gte: base + prefix };
  const cur = new Cursor(db, { ...lower, lt }, delim ? 16 : max + 1, TEXT_KEYS);
  const skip = (cp: string) => cur.skipPrefix(baseText + cp, () => K.successor(base + K.bytes(cp)));
  // Key text and stored record, alternating.
  const rows: string[] = [];
  const commonPrefixes: string[] = [];
  let isTruncated = false;
  let count = 0;
  let last: string | undefined;
  try {
    for (;;) {
      const e = await cur.next(max - count + 1);
      if (!e) break;
      const rel = e[0].slice(baseText.length);
      const cp = commonPrefix(rel, prefixText.length, delim);
      if (cp !== undefined && cp === afterText) {
        skip(cp);
        continue;
      }
      if (count === max) {
        isTruncated = true;
        break;
      }
      count++;
      if (cp !== undefined) {
        commonPrefixes.push(cp);
        last = cp;
        skip(cp);
      } else {
        rows.push(rel, e[1]);
        last = rel;
      }
    }
  } finally {
    await cur.close();
  }
  return lazyPage(rows, commonPrefixes, isTruncated, last, form);
}

/**
 * A plain ListObjectsResult whose `objects` are parsed on first read (then an ordinary data
 * property), and which encodes as the stored text while they have not been.
 */
function lazyPage<F extends PageForm>(
  rows: string[],
  commonPrefixes: string[],
  isTruncated: boolean,
  last: string | undefined,
  form: F,
): ListObjectsResult<Item<F>> {
  const { decode } = FORMS[form];
  const res = { objects: [], commonPrefixes, isTruncated } as ListObjectsResult<Item<F>>;
  if (last !== undefined) res.last = last;
  let raw = true;
  const settle = (value: Item<F>[]) => {
    raw = false;
    Object.defineProperty(res, 'objects', {
      value,
      writable: true,
      enumerable: true,
      configurable: true,
    });
  };
  Object.defineProperty(res, 'objects', {
    enumerable: true,
    configurable: true,
    get() {
      const objects: Item<F>[] = [];
      for (let i = 0; i < rows.length; i += 2)
        objects.push(decode(rows[i]!, rows[i + 1]!) as Item<F>);
      settle(objects);
      return objects;
    },
    set: settle,
  });
  // Not enumerable: invisible to equality checks, spreads and clones (which get plain data).
  Object.defineProperty(res, WIRE_JSON, {
    value: (encode: (v: unknown) => string | undefined) =>
      raw ? encodePage(res, rows, form, encode) : undefined,
  });
  return res;
}

function encodePage(
  res: ListObjectsResult<unknown>,
  rows: string[],
  form: PageForm,
  encode: (v: unknown) => string | undefined,
): string {
  const fields: string[] = [];
  for (const name of Object.keys(res)) {
    // No field of a ListObjectsResult starts with "$", so names need no wire escaping.
    const v =
      name === 'objects'
        ? encodeRows(rows, form, encode)
        : encode((res as unknown as Record<string, unknown>)[name]);
    if (v !== undefined) fields.push(`${JSON.stringify(name)}:${v}`);
  }
  return `{${fields.join(',')}}`;
}

/**
 * What encode(decode(key, stored)) gives, without the parse: the stored text is
 * JSON.stringify's own, so it reads as the record (or summary) minus its key. One with "$ in
 * it may hold a "$…" name that the wire escapes; encode sees to those (rare) ones.
 */
function encodeRows(
  rows: string[],
  form: PageForm,
  encode: (v: unknown) => string | undefined,
): string {
  const { decode, json } = FORMS[form];
  // Appending (a rope, flattened once when written) is cheaper here than an array and join.
  let out = '[';
  for (let i = 0; i < rows.length; i += 2) {
    const key = rows[i]!;
    const stored = json(rows[i + 1]!);
    if (i > 0) out += ',';
    if (stored.includes('"$') || stored.charCodeAt(0) !== 0x7b /* { */) {
      out += encode(decode(key, rows[i + 1]!));
    } else if (stored.length === 2) {
      out += `{"key":${JSON.stringify(key)}}`;
    } else {
      out += `{"key":${JSON.stringify(key)},${stored.slice(1)}`;
    }
  }
  return `${out}]`;
}
