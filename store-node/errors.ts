// One error type for the store: it knows its HTTP status and JSON body, so the server
// never has to map messages to codes.
export type StoreErrorCode =
  | 'InvalidArgument'
  | 'Forbidden'
  | 'NoSuchVolume'
  | 'NoSuchNeedle'
  | 'CookieMismatch'
  | 'VolumeExists'
  | 'NeedleExists'
  | 'UnknownReplica'
  | 'VolumeReadOnly'
  | 'VolumeFull'
  | 'EntityTooLarge'
  | 'IncompleteBody'
  | 'BadChecksum'
  | 'InvalidRange'
  | 'NeedleCorrupt'
  | 'MethodNotAllowed'
  | 'NotFound'
  | 'Busy'
  | 'ReplicaWriteFailed'
  | 'SyncIncomplete'
  | 'InternalError';

const STATUS: Record<StoreErrorCode, number> = {
  InvalidArgument: 400,
  Forbidden: 403,
  NoSuchVolume: 404,
  NoSuchNeedle: 404,
  CookieMismatch: 403,
  VolumeExists: 409,
  /** Needles are write-once: the id holds other bytes, or was deleted (Volume.write). */
  NeedleExists: 409,
  /** x-ks-replicas or a sync source names a store the directory does not know. */
  UnknownReplica: 403,
  VolumeReadOnly: 409,
  VolumeFull: 507,
  EntityTooLarge: 413,
  IncompleteBody: 400,
  BadChecksum: 400,
  InvalidRange: 416,
  NeedleCorrupt: 500,
  MethodNotAllowed: 405,
  NotFound: 404,
  Busy: 409,
  ReplicaWriteFailed: 502,
  SyncIncomplete: 502,
  InternalError: 500,
};

export class StoreError extends Error {
  readonly status: number;
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    /** Extra fields of the JSON body (e.g. which replicas failed). */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'StoreError';
    this.status = STATUS[code];
  }

  toJSON(): { error: StoreErrorCode; message: string } & Record<string, unknown> {
    return { ...this.details, error: this.code, message: this.message };
  }
}
