// Decoding of `Content-Encoding: aws-chunked` bodies, the framing S3 SDKs use for signed
// streaming uploads and for trailing checksums:
//
//   signed:            <hex>;chunk-signature=<sig>\r\n <data> \r\n … 0;chunk-signature=<sig>\r\n \r\n
//   unsigned-trailer:  <hex>\r\n <data> \r\n … 0\r\n <name>:<value>\r\n … \r\n
//   signed-trailer:    signed chunks, then trailers and x-amz-trailer-signature:<sig>\r\n \r\n
//
// Memory stays bounded by what the input hands over, never by the chunk size: every chunk,
// signed or not, streams through as it arrives. A signed chunk is hashed as its bytes go
// by and its signature is checked at its end; a mismatch fails the whole body. Emitting
// bytes before their chunk's signature checked out is safe because of what consumers do
// with them: an upload (gateway/upload.ts) only writes them into needles that no record
// refers to, and commits nothing until the whole body — every chunk signature, the final
// one and the trailer's — has verified; a body that fails frees those needles. Buffering
// a chunk whole instead would let each request pin up to the chunk cap (16 MiB) in
// memory. The chunk size cap remains as a framing sanity bound. Framing lines are capped
// too, so garbage cannot make the decoder buffer or wait for ever; everything wrong with
// the body surfaces as an S3Error.
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { S3Error } from '../error.ts';
import type { AuthResult } from './sigv4.ts';
import { EMPTY_SHA256, sha256Hex } from './sigv4.ts';

export type ChunkedMode = 'signed' | 'unsigned-trailer' | 'signed-trailer';

export interface ChunkedOptions {
  mode: ChunkedMode;
  /** Signed modes: the SigV4 signing key, request signature, timestamp and scope. */
  signingKey?: Buffer;
  seedSignature?: string;
  date?: string;
  scope?: string;
  /** x-amz-decoded-content-length, when the client sent it. */
  decodedLength?: number;
  /** Trailer names declared in x-amz-trailer (lowercase); when given, exactly these must come. */
  trailerNames?: readonly string[];
  /** Largest chunk accepted (default 16 MiB): a framing bound only, chunks stream through. */
  maxChunkSize?: number;
}

export interface ChunkedResult {
  /** Trailing headers, names lowercased (x-amz-trailer-signature is checked, not returned). */
  trailers: Map<string, string>;
  decodedLength: number;
}

export const DEFAULT_MAX_CHUNK = 16 * 1024 * 1024;
const MAX_LINE = 4096;
const MAX_TRAILERS = 16;
const TRAILER_SIGNATURE = 'x-amz-trailer-signature';

/**
 * The decoder options for an authenticated request, from its headers: the mode follows
 * x-amz-content-sha256; x-amz-decoded-content-length and x-amz-trailer are parsed here.
 */
export function chunkedOptionsFor(
  auth: AuthResult,
  headers: Record<string, string | string[] | undefined>,
  maxChunkSize?: number,
): ChunkedOptions {
  if (auth.streaming === 'none') {
    throw new S3Error('InvalidRequest', 'The request does not use an aws-chunked payload.');
  }
  const one = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v.join(',') : v;
  };
  const opts: ChunkedOptions = { mode: auth.streaming, maxChunkSize };
  if (auth.streaming !== 'unsigned-trailer') {
    opts.signingKey = auth.signingKey;
    opts.seedSignature = auth.seedSignature;
    opts.date = auth.date;
    opts.scope = auth.scope;
  }
  const decoded = one('x-amz-decoded-content-length')?.trim();
  if (decoded !== undefined) {
    if (!/^\d{1,15}$/.test(decoded)) {
      throw new S3Error('InvalidArgument', 'x-amz-decoded-content-length is not a number.');
    }
    opts.decodedLength = Number(decoded);
  } else if (auth.streaming === 'signed') {
    throw new S3Error('MissingContentLength', 'You must provide x-amz-decoded-content-length.');
  }
  const trailer = one('x-amz-trailer');
  if (trailer !== undefined) {
    opts.trailerNames = trailer
      .split(',')
      .map((n) => n.trim().toLowerCase())
      .filter((n) => n !== '');
  } else if (auth.streaming !== 'signed') {
    opts.trailerNames = [];
  }
  return opts;
}

export interface DecodedBody {
  /**
   * The decoded bytes, authenticated only once the generator has returned (signed chunks
   * stream through before their signature is checked); its return value carries the
   * trailers too.
   */
  body: AsyncGenerator<Buffer, ChunkedResult, undefined>;
  /**
   * The trailers, once `body` has been read to the end. Rejects with the decoding error if
   * the body failed, or with IncompleteBody if it was abandoned part way.
   */
  trailers: () => Promise<Record<string, string>>;
}

/** Decodes an aws-chunked body. */
export function decodeAwsChunked(
  input: AsyncIterable<Uint8Array>,
  opts: ChunkedOptions,
): DecodedBody {
  const decoder = new AwsChunkedDecoder(opts);
  const body = decoder.decode(input);
  return {
    body,
    trailers: () => decoder.finished.then((r) => Object.fromEntries(r.trailers)),
  };
}

/** A decoder whose trailers are readable after `for await (… of decoder.decode(body))`. */
export class AwsChunkedDecoder {
  readonly trailers = new Map<string, string>();
  decodedLength = 0;
  /** True once the whole body, trailers included, has been read and checked. */
  done = false;
  /** Settles when decode() ends: fulfilled with the result, or rejected with its error. */
  readonly finished: Promise<ChunkedResult>;
  private settle!: (r: ChunkedResult | Error) => void;
  private readonly maxChunk: number;
  private readonly signed: boolean;
  private prevSignature = '';
  private started = false;

  constructor(private readonly opts: ChunkedOptions) {
    this.maxChunk = opts.maxChunkSize ?? DEFAULT_MAX_CHUNK;
    this.signed = opts.mode !== 'unsigned-trailer';
    if (this.signed) {
      if (!opts.signingKey || !opts.seedSignature || !opts.date || !opts.scope) {
        throw new TypeError(
          'signed aws-chunked decoding needs signingKey, seedSignature, date, scope',
        );
      }
      this.prevSignature = opts.seedSignature;
    }
    this.finished = new Promise<ChunkedResult>((resolve, reject) => {
      this.settle = (r) => (r instanceof Error ? reject(r) : resolve(r));
    });
    // Nobody may ever ask for the trailers; a failed body must not become an unhandled rejection.
    this.finished.catch(() => {});
  }

  /**
   * Signed bytes are yielded before their chunk's signature is checked: nothing read from
   * here is authenticated until the generator has returned (a bad chunk throws at its end).
   * Like `for await`, this closes the input (calls its iterator's return()) when decoding
   * stops early or fails; for a node request that destroys the socket, so pass
   * `req.iterator({ destroyOnReturn: false })` to keep it for the error response.
   */
  async *decode(
    input: AsyncIterable<Uint8Array>,
  ): AsyncGenerator<Buffer, ChunkedResult, undefined> {
    if (this.started) throw new TypeError('an AwsChunkedDecoder decodes one body');
    this.started = true;
    const r = new Reader(input);
    try {
      for (;;) {
        const { size, signature } = this.parseChunkLine(await r.line(MAX_LINE));
        if (size === 0) {
          if (signature !== undefined) this.checkChunk(signature, createHash('sha256'));
          await this.readTrailers(r);
          break;
        }
        this.count(size);
        if (this.signed) {
          // Streamed on before the signature is known (see the header comment): the
          // consumer commits nothing unless decoding ends without an error.
          const hash = createHash('sha256');
          for await (const piece of r.data(size)) {
            hash.update(piece);
            yield piece;
          }
          await r.crlf();
          this.checkChunk(signature!, hash);
        } else {
          yield* r.data(size);
          await r.crlf();
        }
      }
      await r.end();
      if (this.opts.decodedLength !== undefined && this.decodedLength !== this.opts.decodedLength) {
        throw new S3Error(
          'IncompleteBody',
          `The decoded body is ${this.decodedLength} bytes; x-amz-decoded-content-length says ${this.opts.decodedLength}.`,
        );
      }
      this.done = true;
      const result = { trailers: this.trailers, decodedLength: this.decodedLength };
      this.settle(result);
      return result;
    } catch (e) {
      this.settle(e instanceof Error ? e : new Error(String(e)));
      throw e;
    } finally {
      if (!this.done) {
        this.settle(new S3Error('IncompleteBody', 'The request body was not read to the end.'));
      }
      await r.close();
    }
  }

  private parseChunkLine(line: string): { size: number; signature?: string } {
    const m = this.signed
      ? /^([0-9a-fA-F]{1,16});chunk-signature=([0-9a-fA-F]{64})$/.exec(line)
      : /^([0-9a-fA-F]{1,16})(?:;[^\r\n]*)?$/.exec(line);
    if (!m) {
      throw new S3Error(
        'InvalidRequest',
        `Malformed aws-chunked chunk header "${line.slice(0, 100)}".`,
      );
    }
    const size = Number.parseInt(m[1]!, 16);
    if (size > this.maxChunk) {
      throw new S3Error('InvalidRequest', `An aws-chunked chunk exceeds ${this.maxChunk} bytes.`);
    }
    return { size, signature: m[2]?.toLowerCase() };
  }

  private count(size: number): void {
    this.decodedLength += size;
    const limit = this.opts.decodedLength;
    if (limit !== undefined && this.decodedLength > limit) {
      throw new S3Error(
        'IncompleteBody',
        `The body decodes to more than the ${limit} bytes of x-amz-decoded-content-length.`,
      );
    }
  }

  private checkChunk(signature: string, dataHash: ReturnType<typeof createHash>): void {
    const sts = `AWS4-HMAC-SHA256-PAYLOAD\n${this.opts.date}\n${this.opts.scope}\n${this.prevSignature}\n${EMPTY_SHA256}\n${dataHash.digest('hex')}`;
    this.verify(signature, sts, 'chunk');
  }

  private verify(signature: string, stringToSign: string, what: string): void {
    const expected = createHmac('sha256', this.opts.signingKey!).update(stringToSign).digest();
    if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) {
      throw new S3Error(
        'SignatureDoesNotMatch',
        `The ${what} signature we calculated does not match the signature you provided.`,
        { extra: { StringToSign: stringToSign, SignatureProvided: signature } },
      );
    }
    this.prevSignature = signature;
  }

  private async readTrailers(r: Reader): Promise<void> {
    let signature: string | undefined;
    for (;;) {
      // The JS SDK ends an unsigned body without trailers at "0\r\n": EOF on a line
      // boundary ends the trailer section there.
      const line = await r.line(MAX_LINE, this.opts.mode === 'unsigned-trailer');
      if (line === '' || line === null) break;
      if (signature !== undefined) {
        throw new S3Error('InvalidRequest', `${TRAILER_SIGNATURE} must be the last trailer.`);
      }
      const colon = line.indexOf(':');
      const name = colon > 0 ? line.slice(0, colon).trim().toLowerCase() : '';
      if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(name)) {
        throw new S3Error(
          'InvalidRequest',
          `Malformed aws-chunked trailer "${line.slice(0, 100)}".`,
        );
      }
      const value = line.slice(colon + 1).trim();
      if (name === TRAILER_SIGNATURE) {
        signature = value;
        continue;
      }
      if (this.trailers.has(name)) {
        throw new S3Error('InvalidRequest', `The trailer ${name} appears twice.`);
      }
      if (this.trailers.size >= MAX_TRAILERS) {
        throw new S3Error('InvalidRequest', 'Too many aws-chunked trailers.');
      }
      const declared = this.opts.trailerNames;
      if (declared !== undefined && !declared.includes(name)) {
        throw new S3Error(
          'InvalidRequest',
          `The trailer ${name} was not declared in x-amz-trailer.`,
        );
      }
      this.trailers.set(name, value);
    }
    if (this.opts.mode === 'signed' && (this.trailers.size > 0 || signature !== undefined)) {
      throw new S3Error(
        'InvalidRequest',
        'Trailers need STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER.',
      );
    }
    if (this.opts.mode === 'signed-trailer') {
      if (signature === undefined || !/^[0-9a-fA-F]{64}$/.test(signature)) {
        throw new S3Error(
          'InvalidRequest',
          `The signed trailer lacks a valid ${TRAILER_SIGNATURE}.`,
        );
      }
      const sts = `AWS4-HMAC-SHA256-TRAILER\n${this.opts.date}\n${this.opts.scope}\n${this.prevSignature}\n${sha256Hex(canonicalTrailers(this.trailers))}`;
      this.verify(signature.toLowerCase(), sts, 'trailer');
    }
    for (const name of this.opts.trailerNames ?? []) {
      if (!this.trailers.has(name)) {
        throw new S3Error(
          'IncompleteBody',
          `The trailer ${name} declared in x-amz-trailer was not sent.`,
        );
      }
    }
  }
}

// Trailers are signed as canonical headers: sorted, `name:value\n`.
function canonicalTrailers(trailers: Map<string, string>): string {
  return [...trailers]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([n, v]) => `${n}:${v}\n`)
    .join('');
}

const EMPTY = Buffer.alloc(0);

// Pull-based reader over the input: lines are searched only within the cap, data is handed
// out as views of the input buffers, and only an incomplete line is ever copied.
class Reader {
  private readonly it: AsyncIterator<Uint8Array>;
  private buf: Buffer = EMPTY;
  private pos = 0;
  private eof = false;

  constructor(input: AsyncIterable<Uint8Array>) {
    this.it = input[Symbol.asyncIterator]();
  }

  private async more(): Promise<boolean> {
    if (this.eof) return false;
    for (;;) {
      const r = await this.it.next();
      if (r.done) {
        this.eof = true;
        return false;
      }
      const v = r.value;
      if (!(v instanceof Uint8Array)) throw new TypeError('aws-chunked input must yield bytes');
      if (v.length === 0) continue;
      const chunk = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      this.buf =
        this.pos < this.buf.length ? Buffer.concat([this.buf.subarray(this.pos), chunk]) : chunk;
      this.pos = 0;
      return true;
    }
  }

  /** One CRLF-terminated line (latin1), at most `max` bytes before the CRLF; null at a
   *  clean EOF when `eofOk`. */
  async line(max: number, eofOk: boolean): Promise<string | null>;
  async line(max: number, eofOk?: false): Promise<string>;
  async line(max: number, eofOk = false): Promise<string | null> {
    for (;;) {
      const window = this.buf.subarray(this.pos, this.pos + max + 2);
      const nl = window.indexOf(0x0a);
      if (nl >= 0) {
        if (nl === 0 || window[nl - 1] !== 0x0d) {
          throw new S3Error('InvalidRequest', 'Malformed aws-chunked framing: expected CRLF.');
        }
        const line = window.toString('latin1', 0, nl - 1);
        this.pos += nl + 1;
        return line;
      }
      if (window.length >= max + 2) {
        throw new S3Error('InvalidRequest', 'Malformed aws-chunked framing: line too long.');
      }
      if (!(await this.more())) {
        if (eofOk && window.length === 0) return null;
        throw new S3Error('IncompleteBody', 'The aws-chunked body ended early.');
      }
    }
  }

  async crlf(): Promise<void> {
    if ((await this.line(0)) !== '') {
      throw new S3Error('InvalidRequest', 'Malformed aws-chunked framing: expected CRLF.');
    }
  }

  async *data(n: number): AsyncGenerator<Buffer, void, undefined> {
    let left = n;
    while (left > 0) {
      if (this.pos >= this.buf.length && !(await this.more())) {
        throw new S3Error('IncompleteBody', 'The aws-chunked body ended inside a chunk.');
      }
      const take = Math.min(left, this.buf.length - this.pos);
      const piece = this.buf.subarray(this.pos, this.pos + take);
      this.pos += take;
      left -= take;
      yield piece;
    }
  }

  /** Nothing may follow the final chunk's trailer section. */
  async end(): Promise<void> {
    if (this.pos < this.buf.length || (await this.more())) {
      throw new S3Error('InvalidRequest', 'Unexpected data after the final aws-chunked chunk.');
    }
  }

  async close(): Promise<void> {
    if (!this.eof) {
      this.eof = true;
      await this.it.return?.();
    }
  }
}

// ---------------------------------------------------------------------------------------
// Encoder (clients' side): tests and the benchmark's load generator.

export function chunkSignature(
  signingKey: Buffer,
  date: string,
  scope: string,
  previous: string,
  data: Uint8Array,
): string {
  const sts = `AWS4-HMAC-SHA256-PAYLOAD\n${date}\n${scope}\n${previous}\n${EMPTY_SHA256}\n${sha256Hex(data)}`;
  return createHmac('sha256', signingKey).update(sts).digest('hex');
}

export function trailerSignature(
  signingKey: Buffer,
  date: string,
  scope: string,
  previous: string,
  trailers: Map<string, string>,
): string {
  const sts = `AWS4-HMAC-SHA256-TRAILER\n${date}\n${scope}\n${previous}\n${sha256Hex(canonicalTrailers(trailers))}`;
  return createHmac('sha256', signingKey).update(sts).digest('hex');
}

export interface EncodeOptions {
  mode: ChunkedMode;
  chunkSize: number;
  signingKey?: Buffer;
  seedSignature?: string;
  date?: string;
  scope?: string;
  trailers?: [string, string][];
}

/** The aws-chunked encoding of `data`, as an SDK would send it. */
export function encodeAwsChunked(data: Uint8Array, opts: EncodeOptions): Buffer {
  const out: Buffer[] = [];
  const signed = opts.mode !== 'unsigned-trailer';
  let prev = opts.seedSignature ?? '';
  const frame = (chunk: Uint8Array) => {
    let head = chunk.length.toString(16);
    if (signed) {
      prev = chunkSignature(opts.signingKey!, opts.date!, opts.scope!, prev, chunk);
      head += `;chunk-signature=${prev}`;
    }
    out.push(Buffer.from(`${head}\r\n`));
    if (chunk.length > 0) out.push(Buffer.from(chunk), Buffer.from('\r\n'));
  };
  for (let i = 0; i < data.length; i += opts.chunkSize) {
    frame(data.subarray(i, Math.min(data.length, i + opts.chunkSize)));
  }
  frame(EMPTY);
  const trailers = new Map((opts.trailers ?? []).map(([k, v]) => [k.toLowerCase(), v]));
  for (const [k, v] of trailers) out.push(Buffer.from(`${k}:${v}\r\n`));
  if (opts.mode === 'signed-trailer') {
    const sig = trailerSignature(opts.signingKey!, opts.date!, opts.scope!, prev, trailers);
    out.push(Buffer.from(`${TRAILER_SIGNATURE}:${sig}\r\n`));
  }
  out.push(Buffer.from('\r\n'));
  return Buffer.concat(out);
}
