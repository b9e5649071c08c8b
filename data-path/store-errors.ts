// The store nodes' errors at the data path's seam: a StoreError (store-node/errors.ts)
// leaving data-path/ becomes a DataError (api.ts), so the gateway answers from the data
// path's codes alone and never learns a store's. Other errors pass as they are (a client's
// body failing, a metadata error from placement, a connection error).
import type { NeedleStore } from '../store-node/api.ts';
import { StoreError } from '../store-node/errors.ts';
import { DataError, type DataErrorCode } from './api.ts';

function codeOf(e: StoreError): DataErrorCode {
  switch (e.code) {
    case 'Busy':
    case 'VolumeFull':
      return 'Busy';
    case 'ReplicaWriteFailed':
      return 'Unavailable';
    case 'NoSuchNeedle':
      return 'NeedleGone';
    default:
      return 'StoreFailed';
  }
}

/** `e` as the data path reports it: a StoreError mapped (kept as the cause), else `e`. */
export function toDataError(e: unknown): unknown {
  return e instanceof StoreError ? new DataError(codeOf(e), e.message, e) : e;
}

/**
 * `needles` for a reader outside data-path/ (the gateway's cache reads needles directly):
 * every call's StoreError comes out as a DataError.
 */
export function withDataErrors(needles: NeedleStore): NeedleStore {
  return new Proxy(needles, {
    get(target, prop, receiver) {
      const v: unknown = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return async (...args: unknown[]) => {
        try {
          return await v.apply(target, args);
        } catch (e) {
          throw toDataError(e);
        }
      };
    },
  });
}
