// S3 XML: responses are rendered by a small string builder (fast, predictable element
// order, no schema surprises); request bodies are parsed with fast-xml-parser, and any
// parse failure or unexpected shape becomes MalformedXML.
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { xmlEscape as escapeXml, S3Error } from './error.ts';

export const S3_NS = 'http://s3.amazonaws.com/doc/2006-03-01/';

export { escapeXml };

export type XmlValue = string | number | boolean | null | undefined | XmlNode | XmlValue[];
export interface XmlNode {
  [name: string]: XmlValue;
}

function render(name: string, v: XmlValue, out: string[]): void {
  if (v === undefined || v === null) return;
  if (Array.isArray(v)) {
    for (const item of v) render(name, item, out);
    return;
  }
  if (typeof v === 'object') {
    out.push(`<${name}>`);
    for (const [k, child] of Object.entries(v)) render(k, child, out);
    out.push(`</${name}>`);
    return;
  }
  out.push(`<${name}>${escapeXml(String(v))}</${name}>`);
}

/** `<?xml…?><Root xmlns=…>…</Root>` from a plain object; arrays repeat the element. */
export function toXml(root: string, body: XmlNode, ns: string | null = S3_NS): string {
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>\n'];
  out.push(ns ? `<${root} xmlns="${ns}">` : `<${root}>`);
  for (const [k, v] of Object.entries(body)) render(k, v, out);
  out.push(`</${root}>`);
  return out.join('');
}

const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false,
  // Not trimmed by the parser: object keys may begin or end with spaces (` `, `a `).
  // normalize() trims every other value.
  trimValues: false,
  processEntities: true,
  // Numeric character references (&#34; &#x22;): Go's encoding/xml (rclone, minio-go)
  // escapes the quotes around every ETag in CompleteMultipartUpload that way.
  htmlEntities: true,
  isArray: (name) => ['Part', 'Object', 'Tag', 'CORSRule'].includes(name),
});

/** Parses a request body; the root element must be `root`. */
export function parseXmlBody(text: string, root: string): Record<string, unknown> {
  if (text.trim() === '') throw new S3Error('MalformedXML', 'The XML you provided was empty.');
  if (XMLValidator.validate(text) !== true) {
    throw new S3Error(
      'MalformedXML',
      'The XML you provided was not well-formed or did not validate against our published schema.',
    );
  }
  let doc: Record<string, unknown>;
  try {
    doc = parser.parse(text) as Record<string, unknown>;
  } catch {
    throw new S3Error(
      'MalformedXML',
      'The XML you provided was not well-formed or did not validate against our published schema.',
    );
  }
  const top = normalize(doc[root], root);
  if (top === undefined) {
    throw new S3Error(
      'MalformedXML',
      `The XML you provided did not have ${root} as its root element.`,
    );
  }
  return typeof top === 'string' ? {} : (top as Record<string, unknown>);
}

/** Elements whose text is data to keep byte for byte (whitespace included). */
const VERBATIM = new Set(['Key', 'Prefix']);

function normalize(v: unknown, name: string): unknown {
  if (typeof v === 'string') return VERBATIM.has(name) ? v : v.trim();
  if (Array.isArray(v)) return v.map((x) => normalize(x, name));
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, child] of Object.entries(v)) {
      if (k === '#text') continue; // indentation between child elements
      out[k] = normalize(child, k);
    }
    return out;
  }
  return v;
}

const DAY_MS = 86_400_000;
let cachedDay = Number.NaN;
let cachedDayText = '';
const pad2 = (n: number) => (n < 10 ? `0${n}` : `${n}`);

/**
 * Date.prototype.toISOString, for a listing's thousand dates a page: objects written close
 * together share the day, so only the time of day is formatted (a Date each cost ~0.5 ms a
 * page). Outside years 0-9999 (expanded years) the Date does it.
 */
export function isoDate(ms: number): string {
  if (!(ms >= 0 && ms < 253402300800000) || !Number.isInteger(ms)) {
    return new Date(ms).toISOString();
  }
  const day = Math.floor(ms / DAY_MS);
  if (day !== cachedDay) {
    cachedDay = day;
    cachedDayText = new Date(day * DAY_MS).toISOString().slice(0, 11);
  }
  let t = ms - day * DAY_MS;
  const milli = t % 1000;
  t = (t - milli) / 1000;
  const sec = t % 60;
  t = (t - sec) / 60;
  const min = t % 60;
  const hour = (t - min) / 60;
  const mmm = milli < 10 ? `00${milli}` : milli < 100 ? `0${milli}` : `${milli}`;
  return `${cachedDayText}${pad2(hour)}:${pad2(min)}:${pad2(sec)}.${mmm}Z`;
}
