// Expires abandoned multipart uploads: every `sweepMs`, each upload initiated more than
// `expiryMs` ago is aborted exactly as AbortMultipartUpload does it — the metadata's
// abortUpload command removes the upload and its part records, and the parts it returns
// have their needles freed through the data path.
//
// It runs in every gateway (assembleGateway: the embedded server, each of its workers, the
// cluster's gateways), and that is safe because the abort is one atomic metadata command:
// of the gateways (and clients) racing for an upload, exactly one abortUpload or
// completeUpload commits; every other one fails with NoSuchUpload and frees nothing. Only
// the committed abort's own result — the parts as they were at commit time, not as they
// were listed — is freed, so:
//  - a CompleteMultipartUpload racing the expiry either commits first (the abort then
//    finds no upload) or fails with NoSuchUpload (its parts are freed, no object refers to
//    them): never a committed object with freed needles;
//  - an UploadPart racing it either lands before (its part is freed with the others) or
//    is rejected (the gateway frees the part's needles itself).
// A free that fails leaves orphan needles, which the directory's orphan sweep reclaims
// (cluster); while an upload is open its parts are referenced, so that sweep never takes
// them. A gateway that should not sweep gets multipartSweepMs 0.
import type { Logger } from '../common/log.ts';
import type { DataPath } from '../data-path/api.ts';
import { MetadataError, type MetadataStore, type UploadRecord } from '../directory/model/api.ts';

export interface MultipartExpiryOptions {
  meta: MetadataStore;
  data: Pick<DataPath, 'free'>;
  log: Logger;
  /** Uploads older than this are aborted (config gateway.multipartExpiryMs; 0 = never). */
  expiryMs: number;
  /** How often (config gateway.multipartSweepMs; 0 = this gateway does not sweep). */
  sweepMs: number;
}

export interface ExpiryPassResult {
  /** Uploads looked at. */
  uploads: number;
  /** Uploads this pass aborted. */
  expired: number;
  /** Parts freed with them. */
  parts: number;
  /** Expired uploads another party completed or aborted first. */
  lost: number;
  /** Aborts that failed (tried again next pass). */
  errors: number;
}

/** The first pass comes at a random moment within this (or sweepMs, if shorter) of start. */
const FIRST_PASS_WITHIN_MS = 60_000;
const PAGE = 1000;
/** Uploads expired at once. */
const CONCURRENCY = 4;
/** A pass gives up after this many failed aborts (the metadata is likely unavailable). */
const MAX_ERRORS = 10;

export class MultipartExpiry {
  /** Totals since start (no metrics registry in the gateway: these are for logs and tests). */
  readonly stats = { passes: 0, expired: 0, parts: 0, lost: 0, errors: 0 };
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = false;

  constructor(private readonly o: MultipartExpiryOptions) {}

  get enabled(): boolean {
    return this.o.expiryMs > 0 && this.o.sweepMs > 0;
  }

  /** Schedules the passes (nothing when disabled). Timers do not keep the process alive. */
  start(): void {
    if (!this.enabled || this.stopped || this.timer) return;
    // Gateways started together do not all sweep at the same moment.
    this.schedule(Math.random() * Math.min(this.o.sweepMs, FIRST_PASS_WITHIN_MS));
  }

  /** Stops the timer and waits for a pass under way (which stops at its next upload). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => {});
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.runPass().finally(() => {
        if (!this.stopped) this.schedule(this.o.sweepMs);
      });
    }, ms);
    this.timer.unref();
  }

  /** One pass; never throws (failures are logged and counted). Concurrent calls share one pass. */
  runPass(now?: number): Promise<ExpiryPassResult | undefined> {
    if (!this.running) {
      this.running = this.pass(now)
        .catch((e: unknown) => {
          this.stats.errors++;
          this.o.log.warn({ err: (e as Error).message }, 'multipart expiry pass failed');
          return undefined;
        })
        .finally(() => {
          this.running = undefined;
        });
    }
    return this.running as Promise<ExpiryPassResult | undefined>;
  }

  /** One pass over every bucket's uploads, aborting those initiated before now − expiryMs. */
  async pass(now = Date.now()): Promise<ExpiryPassResult> {
    const r: ExpiryPassResult = { uploads: 0, expired: 0, parts: 0, lost: 0, errors: 0 };
    if (this.o.expiryMs <= 0) return r;
    const cutoff = now - this.o.expiryMs;
    const buckets: Record<string, number> = {};
    for (const b of await this.o.meta.listBuckets()) {
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      for (;;) {
        if (this.stopped) return this.done(r, buckets);
        let page: Awaited<ReturnType<MetadataStore['listUploads']>>;
        try {
          page = await this.o.meta.listUploads(b.name, {
            keyMarker,
            uploadIdMarker,
            maxUploads: PAGE,
          });
        } catch (e) {
          if (e instanceof MetadataError && e.code === 'NoSuchBucket') break; // deleted since
          throw e;
        }
        r.uploads += page.uploads.length;
        const old = page.uploads.filter((u) => u.initiated <= cutoff);
        // A few at a time: each abort and each free waits for a synced write, and concurrent
        // ones share them (group commit in the metadata and on the stores).
        const worker = async () => {
          for (let u = old.shift(); u; u = old.shift()) {
            if (this.stopped || r.errors >= MAX_ERRORS) return;
            let parts: number | undefined;
            try {
              parts = await this.expire(u, now);
            } catch (e) {
              r.errors++;
              this.o.log.warn(
                { bucket: u.bucket, uploadId: u.uploadId, err: (e as Error).message },
                'could not expire a multipart upload',
              );
              continue;
            }
            if (parts === undefined) r.lost++;
            else {
              r.expired++;
              r.parts += parts;
              buckets[b.name] = (buckets[b.name] ?? 0) + 1;
            }
          }
        };
        await Promise.all(Array.from({ length: CONCURRENCY }, worker));
        if (this.stopped || r.errors >= MAX_ERRORS) return this.done(r, buckets);
        // Markers name the last upload listed, so uploads aborted on this page do not matter.
        if (!page.isTruncated || page.nextKeyMarker === undefined) break;
        keyMarker = page.nextKeyMarker;
        uploadIdMarker = page.nextUploadIdMarker;
      }
    }
    return this.done(r, buckets);
  }

  private done(r: ExpiryPassResult, buckets: Record<string, number>): ExpiryPassResult {
    this.stats.passes++;
    this.stats.expired += r.expired;
    this.stats.parts += r.parts;
    this.stats.lost += r.lost;
    this.stats.errors += r.errors;
    if (r.expired > 0) {
      this.o.log.info(
        { expired: r.expired, parts: r.parts, buckets, expiryMs: this.o.expiryMs },
        'expired abandoned multipart uploads',
      );
    }
    return r;
  }

  /**
   * Aborts one upload and frees the parts the abort removed; the number of parts, or
   * undefined when it was completed or aborted first (nothing of it is freed here then).
   */
  private async expire(u: UploadRecord, now: number): Promise<number | undefined> {
    let parts: Awaited<ReturnType<MetadataStore['abortUpload']>>;
    try {
      // No bucket guard: the expiry acts for no user; an upload keeps its bucket from
      // being deleted, so the bucket is the one it was created in.
      parts = await this.o.meta.abortUpload(u.bucket, u.key, u.uploadId);
    } catch (e) {
      if (e instanceof MetadataError && (e.code === 'NoSuchUpload' || e.code === 'NoSuchBucket')) {
        return undefined;
      }
      // An ambiguous failure (Unavailable) may still have committed: its parts are then
      // referenced by nothing, and the cluster's orphan sweep reclaims them.
      throw e;
    }
    for (const p of parts) await this.o.data.free(p.chunks);
    this.o.log.info(
      { bucket: u.bucket, uploadId: u.uploadId, parts: parts.length, ageMs: now - u.initiated },
      'multipart upload expired',
    );
    return parts.length;
  }
}
