import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test/kit/temp-dirs.ts';
import { DEFAULT_CONFIG, envName, loadConfig, parseSize } from './config.ts';

describe('config', () => {
  it('parses sizes with SI and binary units', () => {
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('64MiB')).toBe(64 * 1024 ** 2);
    expect(parseSize('1g')).toBe(1e9);
    expect(parseSize('1.5GiB')).toBe(1.5 * 1024 ** 3);
    expect(() => parseSize('lots')).toThrow(/not a size/);
    expect(() => parseSize('-1')).toThrow(/not a size/);
  });

  it('layers defaults, file and environment, env last', () => {
    const file = path.join(tempDir(), 'c.json');
    fs.writeFileSync(
      file,
      JSON.stringify({ store: { listen: '0.0.0.0:9', maxVolumeSize: '2GiB', fsync: false } }),
    );
    const cfg = loadConfig({
      file,
      env: { KUBESTORAGE_STORE_MAX_VOLUME_SIZE: '256MiB', KUBESTORAGE_CLUSTER_SECRET: 's3cr3t' },
    });
    expect(cfg.store.listen).toBe('0.0.0.0:9');
    expect(cfg.store.maxVolumeSize).toBe(256 * 1024 ** 2);
    expect(cfg.store.fsync).toBe(false);
    expect(cfg.clusterSecret).toBe('s3cr3t');
    expect(cfg.store.compactGarbageRatio).toBe(DEFAULT_CONFIG.store.compactGarbageRatio);
  });

  it('rejects values of the wrong type with the variable name', () => {
    expect(() => loadConfig({ env: { KUBESTORAGE_STORE_FSYNC: 'maybe' } })).toThrow(
      /KUBESTORAGE_STORE_FSYNC/,
    );
  });

  it('gives every setting one environment variable of its own', () => {
    const names: string[] = [];
    const walk = (t: Record<string, unknown>, path: string[]) => {
      for (const [k, v] of Object.entries(t)) {
        if (v && typeof v === 'object') walk(v as Record<string, unknown>, [...path, k]);
        else names.push(envName([...path, k]));
      }
    };
    walk(DEFAULT_CONFIG as unknown as Record<string, unknown>, []);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain('KUBESTORAGE_CLUSTER_OFFLINE_AFTER_MS');
    expect(names).toContain('KUBESTORAGE_GATEWAY_SUSPECT_MS');
    const cfg = loadConfig({
      env: { KUBESTORAGE_CLUSTER_OFFLINE_AFTER_MS: '1500', KUBESTORAGE_DIRECTORY_TICK_MS: '20' },
    });
    expect(cfg.cluster.offlineAfterMs).toBe(1500);
    expect(cfg.directory.tickMs).toBe(20);
  });

  it('lets KUBESTORAGE_ROOT_ACCESS_KEY / _SECRET_KEY win over the file and section variables', () => {
    const file = path.join(tempDir(), 'c.json');
    fs.writeFileSync(file, JSON.stringify({ server: { rootAccessKey: 'FROMFILE' } }));
    const cfg = loadConfig({
      file,
      env: {
        KUBESTORAGE_SERVER_ROOT_ACCESS_KEY: 'FROMSECTION',
        KUBESTORAGE_ROOT_ACCESS_KEY: 'FROMROOT',
        KUBESTORAGE_ROOT_SECRET_KEY: 'root-secret',
      },
    });
    expect(cfg.server.rootAccessKey).toBe('FROMROOT');
    expect(cfg.server.rootSecretKey).toBe('root-secret');
    expect(loadConfig({ file, env: {} }).server.rootAccessKey).toBe('FROMFILE');
  });
});
