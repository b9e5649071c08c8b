// The gateway side of POST /needles/_read (batch-read.ts): coalesces needle GETs to one
// store. As the metadata client's BatchQueue does, it has no timer: while fewer than
// `maxInFlight` batches are outstanding a read leaves at once (alone, on the single-needle
// route), and reads made meanwhile wait and leave together in the next request. An idle
// gateway sees no extra latency; batches form only under concurrency and grow with it.
import {
  type BatchItem,
  decodeReadAnswer,
  encodeReadRequest,
  type ItemResult,
  MAX_BATCH_READS,
} from './batch-read.ts';

/** Sends one batch; rejects when the request as a whole failed. */
export type SendBatch = (body: Buffer, count: number) => Promise<Buffer>;
/** Reads one needle on its own (the single-needle route). */
export type ReadOne = (item: BatchItem) => Promise<{ data: Buffer; size: number }>;

interface Waiting {
  item: BatchItem;
  bytes: number;
  resolve: (r: { data: Buffer; size: number }) => void;
  reject: (e: unknown) => void;
}

export interface ReadBatcherOptions {
  /** Requests outstanding to the store before reads wait to be batched (default 2). */
  maxInFlight?: number;
  /** Bytes one batch may ask for, counted by the callers' expected sizes (default 1 MiB). */
  maxBytes?: number;
}

export class ReadBatcher {
  private inFlight = 0;
  private readonly queue: Waiting[] = [];
  private readonly maxInFlight: number;
  private readonly maxBytes: number;
  /** Batches sent and the reads they carried (for tests and the bench's account). */
  readonly stats = { batches: 0, batchedReads: 0, singles: 0 };

  constructor(
    private readonly sendBatch: SendBatch,
    private readonly readOne: ReadOne,
    opts: ReadBatcherOptions = {},
  ) {
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 2);
    this.maxBytes = opts.maxBytes ?? 1 << 20;
  }

  /** Reads `item`, whose caller expects about `bytes` bytes. */
  read(item: BatchItem, bytes: number): Promise<{ data: Buffer; size: number }> {
    if (this.inFlight < this.maxInFlight && this.queue.length === 0) {
      this.stats.singles++;
      return this.track(this.readOne(item));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ item, bytes, resolve, reject });
    });
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight++;
    return p.finally(() => {
      this.inFlight--;
      this.next();
    });
  }

  private next(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      let n = 0;
      let bytes = 0;
      while (n < this.queue.length && n < MAX_BATCH_READS) {
        bytes += this.queue[n]!.bytes;
        if (n > 0 && bytes > this.maxBytes) break;
        n++;
      }
      const batch = this.queue.splice(0, n);
      if (batch.length === 1) {
        const w = batch[0]!;
        this.stats.singles++;
        void this.track(this.readOne(w.item)).then(w.resolve, w.reject);
        continue;
      }
      this.stats.batches++;
      this.stats.batchedReads += batch.length;
      const items = batch.map((w) => w.item);
      void this.track(this.sendBatch(encodeReadRequest(items), items.length)).then(
        (body) => {
          let results: ItemResult[];
          try {
            results = decodeReadAnswer(body, batch.length);
          } catch (e) {
            for (const w of batch) w.reject(e);
            return;
          }
          results.forEach((r, i) => {
            if (r.ok) batch[i]!.resolve({ data: r.data, size: r.size });
            else batch[i]!.reject(r.error);
          });
        },
        (e: unknown) => {
          for (const w of batch) w.reject(e);
        },
      );
    }
  }
}
