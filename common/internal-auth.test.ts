import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InternalAuth } from './internal-auth.ts';

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

  it('binds a token to its body when signed with one', () => {
    const now = Date.now();
    const t = auth.sign('POST', '/raft/msgs', now, '[1]');
    expect(auth.verify(t, 'POST', '/raft/msgs', now, '[1]')).toBe(true);
    expect(auth.verify(t, 'POST', '/raft/msgs', now, Buffer.from('[1]'))).toBe(true);
    expect(auth.verify(t, 'POST', '/raft/msgs', now, '[2]')).toBe(false);
    expect(auth.verify(t, 'POST', '/raft/msgs', now)).toBe(false);
    expect(auth.verify(auth.sign('POST', '/raft/msgs', now), 'POST', '/raft/msgs', now, '')).toBe(
      false,
    );
    expect(auth.fresh(t, now)).toBe(true);
    expect(auth.fresh(t, now + 301_000)).toBe(false);
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
