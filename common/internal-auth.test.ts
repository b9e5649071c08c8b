import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AUTH_HEADER, DIGEST_HEADER, InternalAuth, sha256Hex } from './internal-auth.ts';

const auth = new InternalAuth('0123456789abcdef-secret');

describe('internal auth tokens', () => {
  it('verifies its own tokens within the time window only', () => {
    const now = Date.now();
    expect(auth.verify(auth.sign('GET', '/a?b=1', now), 'GET', '/a?b=1', now)).toBe(true);
    expect(auth.verify(auth.sign('GET', '/a?b=1', now - 299_000), 'GET', '/a?b=1', now)).toBe(true);
    expect(auth.verify(auth.sign('GET', '/a?b=1', now - 301_000), 'GET', '/a?b=1', now)).toBe(
      false,
    );
    expect(auth.verify(auth.sign('GET', '/a?b=1', now), 'GET', '/a?b=2', now)).toBe(false);
    expect(auth.verify(auth.sign('GET', '/a', now), 'DELETE', '/a', now)).toBe(false);
  });

  it('covers the body length, its digest and the headers a route names', () => {
    const now = Date.now();
    const h = auth.signBody('POST', '/raft/msgs', '[1]', now);
    const t = h[AUTH_HEADER];
    const covered = { contentLength: '3', digest: h[DIGEST_HEADER] };
    expect(h[DIGEST_HEADER]).toBe(sha256Hex(Buffer.from('[1]')));
    expect(auth.verify(t, 'POST', '/raft/msgs', now, covered)).toBe(true);
    expect(auth.verify(t, 'POST', '/raft/msgs', now, { ...covered, contentLength: 4 })).toBe(false);
    expect(
      auth.verify(t, 'POST', '/raft/msgs', now, { ...covered, digest: sha256Hex('[2]') }),
    ).toBe(false);
    expect(auth.verify(t, 'POST', '/raft/msgs', now)).toBe(false);
    // A path-only token: no Content-Length and 0 are the same (undici sends 0 on bodiless POSTs).
    expect(
      auth.verify(auth.sign('POST', '/x', now), 'POST', '/x', now, { contentLength: '0' }),
    ).toBe(true);
    const withHeaders = auth.sign('PUT', '/n', now, { contentLength: 5, headers: ['1', 'a,b'] });
    expect(
      auth.verify(withHeaders, 'PUT', '/n', now, { contentLength: '5', headers: ['1', 'a,b'] }),
    ).toBe(true);
    for (const headers of [['1', 'a'], ['2', 'a,b'], ['1'], ['1', 'a,b', 'c']]) {
      expect(auth.verify(withHeaders, 'PUT', '/n', now, { contentLength: '5', headers })).toBe(
        false,
      );
    }
  });

  it('derives keys for other purposes that differ from each other and from the MAC key', () => {
    expect(auth.derive('secrets').equals(auth.derive('secrets'))).toBe(true);
    expect(auth.derive('secrets').equals(auth.derive('other'))).toBe(false);
    expect(
      new InternalAuth('another-secret-0123456789')
        .derive('secrets')
        .equals(auth.derive('secrets')),
    ).toBe(false);
  });

  it('never accepts arbitrary strings and never throws on them', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 120 }), (s) => {
        expect(auth.verify(s, 'GET', '/status')).toBe(false);
        expect(auth.verifyMetricsBearer(s)).toBe(false);
      }),
    );
  });

  it('refuses short secrets', () => {
    expect(() => new InternalAuth('short')).toThrow(/at least 16/);
  });
});
