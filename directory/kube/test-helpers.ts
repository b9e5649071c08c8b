// Shared by this folder's tests: a logger that keeps what it is told, the recorded pod
// shapes (fixtures/pods.json) and pods built from them.
import { readFileSync } from 'node:fs';
import type { Logger } from '../../common/log.ts';
import type { Pod } from './api.ts';

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: unknown;
  msg: string | undefined;
}

/** A Logger (the methods this folder calls) that records every line. */
export function recordingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLine['level']) =>
    (obj: unknown, msg?: string): void => {
      lines.push(typeof obj === 'string' ? { level, obj: {}, msg: obj } : { level, obj, msg });
    };
  const logger = {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
  } as unknown as Logger;
  return { logger, lines };
}

// biome-ignore lint/suspicious/noExplicitAny: recorded JSON, read as the API sends it
export const fixtures: any = JSON.parse(
  readFileSync(new URL('./fixtures/pods.json', import.meta.url), 'utf8'),
);

/** The recorded Ready store pod, renamed (a fresh uid per name). */
export function storePod(name: string, ns = 'kubestorage'): Pod {
  const p = structuredClone(fixtures.readyStorePod) as Pod;
  p.metadata.name = name;
  p.metadata.namespace = ns;
  p.metadata.uid = `uid-${name}-${Math.random().toString(16).slice(2, 10)}`;
  p.metadata.labels = { ...p.metadata.labels, 'statefulset.kubernetes.io/pod-name': name };
  if (p.spec) p.spec.hostname = name;
  return p;
}

export const notReady = (p: Pod): void => {
  p.status = { ...p.status, conditions: structuredClone(fixtures.notReadyConditions) };
};

export const terminating = (p: Pod): void => {
  Object.assign(p.metadata, structuredClone(fixtures.terminating));
};
