import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkLinearizable, type HistoryOp } from './linearizability.ts';

// Positional helpers keep the hand-written histories readable as timelines; omitting `ret`
// makes the op indefinite.
const put = (client: number, key: string, value: string, invoke: number, ret?: number) =>
  ({ client, op: { kind: 'put', key, value }, invoke, ret }) satisfies HistoryOp;
const get = (client: number, key: string, result: string | null, invoke: number, ret?: number) =>
  ({ client, op: { kind: 'get', key }, invoke, ret, result }) satisfies HistoryOp;
const cas = (
  client: number,
  key: string,
  expectV: string | null,
  value: string,
  result: boolean | undefined,
  invoke: number,
  ret?: number,
) =>
  ({ client, op: { kind: 'cas', key, expect: expectV, value }, invoke, ret, result }) as HistoryOp;

const ok = (h: HistoryOp[]) => expect(checkLinearizable(h)).toEqual({ ok: true });
const notOk = (h: HistoryOp[], key = 'k') => {
  const r = checkLinearizable(h);
  expect(r.ok).toBe(false);
  expect(r.key).toBe(key);
  expect(r.reason).toBeTypeOf('string');
  return r;
};

describe('linearizable histories', () => {
  it('accepts the empty history and a sequential one', () => {
    ok([]);
    ok([
      get(0, 'k', null, 0, 1),
      put(0, 'k', 'a', 2, 3),
      get(1, 'k', 'a', 4, 5),
      cas(1, 'k', 'a', 'b', true, 6, 7),
      cas(0, 'k', 'a', 'c', false, 8, 9),
      get(0, 'k', 'b', 10, 11),
    ]);
  });

  it('accepts overlapping puts and gets in either order', () => {
    // put a and put b overlap, so both "a then b" and "b then a" are valid outcomes.
    const base = [put(0, 'k', 'a', 0, 10), put(1, 'k', 'b', 2, 12)];
    ok([...base, get(2, 'k', 'a', 13, 14)]);
    ok([...base, get(2, 'k', 'b', 13, 14)]);
    // A get overlapping a put may see the old or the new value.
    ok([put(0, 'k', 'a', 0, 10), get(1, 'k', null, 5, 6)]);
    ok([put(0, 'k', 'a', 0, 10), get(1, 'k', 'a', 5, 6)]);
    // Concurrent reads may split across an in-flight write as long as they don't cross.
    ok([put(0, 'k', 'a', 0, 20), get(1, 'k', null, 1, 15), get(2, 'k', 'a', 2, 16)]);
  });

  it('accepts indefinite ops that took effect and ones that did not', () => {
    const written = [put(0, 'k', 'a', 0, 1), put(1, 'k', 'b', 2)];
    ok([...written, get(2, 'k', 'b', 100, 101)]);
    ok([...written, get(2, 'k', 'a', 100, 101)]);
    // It may even take effect long after its client gave up, between two later reads.
    ok([...written, get(2, 'k', 'a', 100, 101), get(2, 'k', 'b', 200, 201)]);
    // An indefinite cas may have succeeded or not; an indefinite get constrains nothing.
    const c = [put(0, 'k', 'a', 0, 1), cas(1, 'k', 'a', 'b', undefined, 2)];
    ok([...c, get(2, 'k', 'b', 10, 11)]);
    ok([...c, get(2, 'k', 'a', 10, 11)]);
    ok([put(0, 'k', 'a', 0, 1), { client: 1, op: { kind: 'get', key: 'k' }, invoke: 2 }]);
  });

  it('treats ret === invoke as overlapping', () => {
    ok([get(0, 'k', 'a', 0, 5), put(1, 'k', 'a', 5, 10)]);
    notOk([get(0, 'k', 'a', 0, 5), put(1, 'k', 'a', 6, 10)]);
  });

  it('checks keys independently', () => {
    // Conflating keys would make the null read stale.
    ok([put(0, 'x', 'a', 0, 1), get(1, 'y', null, 2, 3), get(1, 'x', 'a', 4, 5)]);
    const r = notOk(
      [
        put(0, 'x', 'a', 0, 1),
        get(1, 'x', 'a', 2, 3),
        put(0, 'y', 'b', 0, 1),
        get(1, 'y', null, 2, 3),
      ],
      'y',
    );
    expect(r.reason).toContain('client 1 get(y)');
  });
});

describe('non-linearizable histories', () => {
  it('rejects a stale read after a completed put', () => {
    notOk([put(0, 'k', 'a', 0, 1), put(0, 'k', 'b', 2, 3), get(1, 'k', 'a', 4, 5)]);
  });

  it('rejects a read of a value never written', () => {
    const r = notOk([put(0, 'k', 'a', 0, 10), get(1, 'k', 'z', 1, 2)]);
    expect(r.reason).toMatch(/never written/);
  });

  it('rejects sequential reads seeing the new value then the old', () => {
    // The put is still in flight, so each read alone is fine; together they go back in time.
    notOk([
      put(0, 'k', 'a', 0, 1),
      put(0, 'k', 'b', 2, 100),
      get(1, 'k', 'b', 10, 20),
      get(2, 'k', 'a', 30, 40),
    ]);
  });

  it('rejects two concurrent cas with the same expect both succeeding', () => {
    const init = put(0, 'k', 'a', 0, 1);
    notOk([init, cas(1, 'k', 'a', 'b', true, 2, 10), cas(2, 'k', 'a', 'c', true, 3, 11)]);
    ok([init, cas(1, 'k', 'a', 'b', true, 2, 10), cas(2, 'k', 'a', 'c', false, 3, 11)]);
  });

  it('rejects a cas outcome the register state rules out', () => {
    notOk([put(0, 'k', 'a', 0, 1), cas(1, 'k', 'a', 'b', false, 2, 3)]);
    notOk([put(0, 'k', 'a', 0, 1), cas(1, 'k', 'x', 'b', true, 2, 3)]);
    // Even with its outcome unknown, a cas can only write if its expectation held.
    notOk([put(0, 'k', 'a', 0, 1), cas(1, 'k', 'x', 'b', undefined, 2), get(2, 'k', 'b', 9, 10)]);
  });

  it('rejects a lost write that its own client cannot read back', () => {
    notOk([put(0, 'k', 'a', 0, 1), get(0, 'k', null, 2, 3)]);
    // Two acknowledged concurrent writes: later reads must agree on a single winner.
    notOk([
      put(0, 'k', 'a', 0, 10),
      put(1, 'k', 'b', 0, 10),
      get(0, 'k', 'a', 11, 12),
      get(1, 'k', 'b', 13, 14),
    ]);
  });

  it('accepts an indefinite put whose value appears, but not before its invoke', () => {
    ok([put(0, 'k', 'a', 10), get(1, 'k', 'a', 5, 15)]);
    notOk([put(0, 'k', 'a', 10), get(1, 'k', 'a', 0, 5)]);
    // Appearing, then vanishing without another write, is not possible either.
    notOk([put(0, 'k', 'a', 10), get(1, 'k', 'a', 20, 21), get(1, 'k', null, 22, 23)]);
  });

  it('gives up with a budget error instead of hanging', () => {
    // Many overlapping distinct writes plus an impossible final read force a wide search.
    const h: HistoryOp[] = [];
    for (let c = 0; c < 16; c++) h.push(put(c, 'k', `v${c}`, 0, 100));
    h.push(get(16, 'k', 'v0', 101, 102), get(16, 'k', 'v1', 103, 104));
    expect(checkLinearizable(h, { maxStates: 1000 })).toEqual({
      ok: false,
      key: 'k',
      reason: 'search budget exceeded',
    });
  });

  it('rejects malformed ops rather than guessing', () => {
    expect(() => checkLinearizable([put(0, 'k', 'a', 5, 4)])).toThrow(RangeError);
    expect(() => checkLinearizable([cas(0, 'k', null, 'a', undefined, 0, 1)])).toThrow(TypeError);
  });
});

// ---- generated histories ----

/**
 * A real register executed at integer points 100·i, with each op's interval stretched by up to
 * `pre`/`post` around its point, so the true order is always a witness. Values are unique per
 * op so that impossible reads can be derived from the history alone.
 */
const stepArb = fc.record({
  key: fc.constantFrom('a', 'b'),
  kind: fc.constantFrom('put', 'get', 'get', 'cas'),
  hit: fc.boolean(),
  pre: fc.nat(250),
  post: fc.nat(250),
  fate: fc.nat(15), // 0: indefinite but applied, 1: indefinite and lost, else completed
});

type Step = typeof stepArb extends fc.Arbitrary<infer T> ? T : never;

function execute(steps: Step[]): HistoryOp[] {
  const reg = new Map<string, string | null>();
  return steps.map((s, i) => {
    const t = 100 * i;
    const cur = reg.get(s.key) ?? null;
    const applied = s.fate !== 1;
    const ret = s.fate <= 1 ? undefined : t + s.post;
    const base = { client: i % 8, invoke: t - s.pre, ret };
    const value = `v${i}`;
    if (s.kind === 'put') {
      if (applied) reg.set(s.key, value);
      return { ...base, op: { kind: 'put', key: s.key, value } };
    }
    if (s.kind === 'get') return { ...base, op: { kind: 'get', key: s.key }, result: cur };
    const exp = s.hit ? cur : cur === null ? 'nope' : null;
    if (applied && exp === cur) reg.set(s.key, value);
    const result = ret === undefined ? undefined : exp === cur;
    return { ...base, op: { kind: 'cas', key: s.key, expect: exp, value }, result };
  });
}

/** Values a completed get provably cannot return, judged from real-time order alone. */
function impossibleReads(h: HistoryOp[], g: HistoryOp): (string | null)[] {
  const writes = h.filter((w) => w.op.key === g.op.key && w.op.kind !== 'get');
  const surelyWrote = writes.filter(
    (w) => w.ret !== undefined && (w.op.kind === 'put' || w.result === true),
  );
  const overwrittenAfter = (end: number) =>
    surelyWrote.some((w2) => end < w2.invoke && w2.ret! < g.invoke);
  const out: (string | null)[] = [];
  if (overwrittenAfter(Number.NEGATIVE_INFINITY)) out.push(null);
  for (const w of writes) {
    if (w.op.kind === 'get') continue;
    const future = w.invoke > g.ret!;
    const stale = w.ret !== undefined && overwrittenAfter(w.ret);
    if (future || stale) out.push(w.op.value);
  }
  return out;
}

describe('generated histories', () => {
  const histArb = fc.array(stepArb, { minLength: 1, maxLength: 80, size: 'max' });

  it('accepts every execution of a real register', () => {
    fc.assert(
      fc.property(histArb, (steps) => {
        expect(checkLinearizable(execute(steps))).toEqual({ ok: true });
      }),
      { numRuns: 400 },
    );
  });

  it('rejects it once one read returns an impossible value', () => {
    fc.assert(
      fc.property(histArb, fc.nat(), fc.nat(), (steps, gi, vi) => {
        const h = execute(steps);
        const gets = h.filter((o) => o.op.kind === 'get' && o.ret !== undefined);
        fc.pre(gets.length > 0);
        const g = gets[gi % gets.length]!;
        const bad = impossibleReads(h, g);
        // The true result is possible, so the oracle must not list it.
        expect(bad).not.toContain(g.result);
        fc.pre(bad.length > 0);
        const mutated = h.map((o) => (o === g ? { ...o, result: bad[vi % bad.length]! } : o));
        const r = checkLinearizable(mutated);
        expect(r.ok).toBe(false);
        expect(r.key).toBe(g.op.key);
      }),
      { numRuns: 400 },
    );
  });

  it('checks a 1000-op, 8-client history quickly', () => {
    const h = clientHistory(1000, 8, 0x5eed);
    const t0 = performance.now();
    expect(checkLinearizable(h)).toEqual({ ok: true });
    const okMs = performance.now() - t0;
    // A stale read near the end forces backtracking over the whole history.
    const last = h.findLast(
      (o) => o.op.kind === 'get' && o.ret !== undefined && o.op.key === 'k0',
    )!;
    const t1 = performance.now();
    const r = checkLinearizable(h.map((o) => (o === last ? { ...o, result: null } : o)));
    const badMs = performance.now() - t1;
    expect(r).toMatchObject({ ok: false, key: 'k0' });
    // Generous bounds: this guards against exponential blow-up, not against a slow CI box.
    expect(okMs).toBeLessThan(500);
    expect(badMs).toBeLessThan(2000);
  });
});

/** Closed-loop clients over 3 keys, each op taking effect at a random point of its interval. */
function clientHistory(nOps: number, clients: number, seed: number): HistoryOp[] {
  let x = seed >>> 0;
  const rnd = (n: number) => {
    x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return ((x >>> 8) * n) >>> 24;
  };
  const free = new Array<number>(clients).fill(0);
  const ops: { h: HistoryOp; at: number }[] = [];
  for (let i = 0; i < nOps; i++) {
    const client = i % clients;
    const invoke = free[client]! + rnd(5);
    const ret = invoke + 1 + rnd(30);
    free[client] = ret;
    const key = `k${rnd(3)}`;
    const kind = rnd(10);
    const op: HistoryOp['op'] =
      kind < 4
        ? { kind: 'put', key, value: `v${i}` }
        : kind < 9
          ? { kind: 'get', key }
          : { kind: 'cas', key, expect: null, value: `v${i}` };
    const indefinite = rnd(100) < 2;
    const at = invoke + ((ret - invoke) * rnd(1000)) / 1000;
    ops.push({ h: { client, op, invoke, ret: indefinite ? undefined : ret }, at });
  }
  const reg = new Map<string, string | null>();
  for (const o of [...ops].sort((a, b) => a.at - b.at)) {
    const op = o.h.op;
    const cur = reg.get(op.key) ?? null;
    if (op.kind === 'put') reg.set(op.key, op.value);
    else if (op.kind === 'get') o.h.result = cur;
    else {
      // Expect the current value half the time so cas succeeds often enough to matter.
      if (rnd(2) === 0) op.expect = cur;
      o.h.result = op.expect === cur;
      if (o.h.result) reg.set(op.key, op.value);
    }
    if (o.h.ret === undefined) delete o.h.result;
  }
  return ops.map((o) => o.h);
}
