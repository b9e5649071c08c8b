// Linearizability checker for the key-value histories the Raft simulation records.
//
// Wing & Gong's search with Lowe's memoization, as in Porcupine (Athalye, "Testing Distributed
// Systems for Linearizability"): call and return events sit in one time-sorted doubly linked
// list; the search repeatedly linearizes a call that is still "minimal" (no return precedes it),
// unlinks it and its return, and backtracks when it meets a return whose call could not be
// placed. A cache of (set of linearized ops, register state) prunes orderings that reach an
// already-explored configuration, which is what makes the search tractable in practice.
//
// Time ties: at equal timestamps calls sort before returns, so `a.ret === b.invoke` means the
// two ops overlap (Porcupine's rule). That is the permissive reading: it can only accept more
// histories, never reject a correct system because two ticks happened to coincide.

export type KvOp =
  | { kind: 'put'; key: string; value: string }
  | { kind: 'get'; key: string }
  | { kind: 'cas'; key: string; expect: string | null; value: string };

/** The keys the simulators' clients work on: few, so operations collide. */
export const SIM_KEYS = ['a', 'b', 'c'];

/**
 * One client operation as both simulators draw it: half puts, 30 % gets, 20 %
 * compare-and-sets expecting null or some client's previous value. Draw order is part of
 * every seed's history.
 */
export function randomOp(rnd: () => number, client: string, reqId: number, clients: number): KvOp {
  const key = SIM_KEYS[Math.floor(rnd() * SIM_KEYS.length)] as string;
  const x = rnd();
  const value = `${client}.${reqId}`;
  if (x < 0.5) return { kind: 'put', key, value };
  if (x < 0.8) return { kind: 'get', key };
  const expect =
    rnd() < 0.3 ? null : `c${1 + Math.floor(rnd() * clients)}.${Math.max(1, reqId - 1)}`;
  return { kind: 'cas', key, expect, value };
}

export interface HistoryOp {
  client: number; // which client issued it (a client has at most one op outstanding)
  op: KvOp;
  invoke: number; // time the call started (integer sim ticks or ms)
  /** undefined = no response seen (timeout/crash): the op may or may not have taken effect, any time after invoke. */
  ret?: number;
  /** For get: value read (null = absent). For cas: whether it succeeded. put: ignored. Only meaningful when ret is set. */
  result?: string | null | boolean;
}

export interface CheckResult {
  ok: boolean;
  /** when !ok: the key whose sub-history is not linearizable, and a short explanation */
  key?: string;
  reason?: string;
}

const DEFAULT_MAX_STATES = 1_000_000;
const BUDGET_EXCEEDED = 'search budget exceeded';

// Op encodings; an indefinite cas has no known outcome, but the register makes it deterministic
// anyway (it succeeds iff the state matches), so no branching is needed for it.
const PUT = 0;
const GET = 1;
const CAS_OK = 2;
const CAS_FAIL = 3;
const CAS_ANY = 4;

/**
 * Keys are independent registers, so each key's sub-history is checked on its own
 * (P-compositionality): exponentially cheaper than searching the interleaving of all keys.
 * `maxStates` bounds the total number of cached states across all keys; each costs about n/8
 * bytes for an n-op key, so a 2000-op key that exhausts the default budget peaks near 300 MB.
 * Throws on malformed input (ret < invoke, a completed get/cas without a proper result), since
 * guessing would make the verdict meaningless.
 */
export function checkLinearizable(
  history: HistoryOp[],
  opts: { maxStates?: number } = {},
): CheckResult {
  const byKey = new Map<string, HistoryOp[]>();
  for (const h of history) {
    validate(h);
    // A get nobody heard back from constrains nothing: it may be omitted and has no effect.
    if (h.ret === undefined && h.op.kind === 'get') continue;
    const list = byKey.get(h.op.key);
    if (list) list.push(h);
    else byKey.set(h.op.key, [h]);
  }
  const budget = { left: opts.maxStates ?? DEFAULT_MAX_STATES };
  for (const [key, ops] of byKey) {
    const reason = checkKey(dropUnobservedWrites(ops), budget);
    if (reason !== undefined) return { ok: false, key, reason };
  }
  return { ok: true };
}

/**
 * Each unanswered write doubles the search on a failing branch, and a fault-heavy run has
 * dozens. One whose value nobody observes (no get read it, no cas expected it) can be left
 * out without changing the verdict — unless a failed cas exists: in a valid linearization
 * only gets and cas ops whose outcome does not depend on it can sit between it and the next
 * write, and a failed cas might depend on it. So the pruning applies only without failed cas.
 */
function dropUnobservedWrites(ops: HistoryOp[]): HistoryOp[] {
  const observed = new Set<string | null>();
  for (const h of ops) {
    if (h.op.kind === 'cas' && h.ret !== undefined && h.result === false) return ops;
    if (h.op.kind === 'get' && h.ret !== undefined) observed.add(h.result as string | null);
    if (h.op.kind === 'cas') observed.add(h.op.expect);
  }
  return ops.filter((h) => h.ret !== undefined || h.op.kind === 'get' || observed.has(h.op.value));
}

function validate(h: HistoryOp): void {
  if (!Number.isFinite(h.invoke)) throw new RangeError(`invoke must be finite: ${describe(h)}`);
  if (h.ret === undefined) return;
  if (!(h.ret >= h.invoke)) throw new RangeError(`ret precedes invoke: ${describe(h)}`);
  if (h.op.kind === 'get' && h.result !== null && typeof h.result !== 'string') {
    throw new TypeError(`completed get needs a string|null result: ${describe(h)}`);
  }
  if (h.op.kind === 'cas' && typeof h.result !== 'boolean') {
    throw new TypeError(`completed cas needs a boolean result: ${describe(h)}`);
  }
}

function describe(h: HistoryOp): string {
  const o = h.op;
  const call =
    o.kind === 'put'
      ? `put(${o.key}, ${JSON.stringify(o.value)})`
      : o.kind === 'get'
        ? `get(${o.key})`
        : `cas(${o.key}, ${JSON.stringify(o.expect)} -> ${JSON.stringify(o.value)})`;
  if (h.ret === undefined) return `client ${h.client} ${call} [${h.invoke}, ?]`;
  const res = o.kind === 'put' ? '' : ` = ${JSON.stringify(h.result)}`;
  return `client ${h.client} ${call}${res} [${h.invoke}, ${h.ret}]`;
}

/** Returns undefined when linearizable, else the reason. */
function checkKey(ops: HistoryOp[], budget: { left: number }): string | undefined {
  const n = ops.length;
  // Interning values lets the state be a small int and the step function pure int compares.
  const ids = new Map<string | null, number>([[null, 0]]);
  const intern = (v: string | null): number => {
    let id = ids.get(v);
    if (id === undefined) ids.set(v, (id = ids.size));
    return id;
  };
  const kind = new Uint8Array(n);
  const arg = new Int32Array(n); // put/cas: value written; get: value read
  const expect = new Int32Array(n);
  const written = new Set<number>();
  // Completed ops not yet linearized. The search succeeds when it reaches 0: leftover
  // indefinite ops can always go last, where nothing observes them, which is "omitted".
  let remaining = 0;
  for (let i = 0; i < n; i++) {
    const h = ops[i]!;
    const o = h.op;
    if (h.ret !== undefined) remaining++;
    if (o.kind === 'put') {
      kind[i] = PUT;
      written.add((arg[i] = intern(o.value)));
    } else if (o.kind === 'get') {
      kind[i] = GET;
      arg[i] = intern(h.result as string | null);
    } else {
      kind[i] = h.ret === undefined ? CAS_ANY : h.result ? CAS_OK : CAS_FAIL;
      expect[i] = intern(o.expect);
      written.add((arg[i] = intern(o.value)));
    }
  }
  // Cheap, precise diagnosis for the most common corruption before paying for a search.
  for (let i = 0; i < n; i++) {
    if (kind[i] === GET && arg[i] !== 0 && !written.has(arg[i]!)) {
      return `${describe(ops[i]!)} read a value that was never written`;
    }
  }

  // Node 0 is the list head; op i has call node 2i+1 and return node 2i+2 (absent if no ret).
  const events: number[] = [];
  const time = (node: number): number => {
    const h = ops[(node - 1) >> 1]!;
    return node & 1 ? h.invoke : h.ret!;
  };
  for (let i = 0; i < n; i++) {
    events.push(2 * i + 1);
    if (ops[i]!.ret !== undefined) events.push(2 * i + 2);
  }
  events.sort((a, b) => time(a) - time(b) || (b & 1) - (a & 1));
  const next = new Int32Array(2 * n + 1).fill(-1);
  const prev = new Int32Array(2 * n + 1).fill(-1);
  let tail = 0;
  for (const e of events) {
    next[tail] = e;
    prev[e] = tail;
    tail = e;
  }
  const hasRet = (i: number) => ops[i]!.ret !== undefined;
  const unlink = (x: number) => {
    next[prev[x]!] = next[x]!;
    if (next[x] !== -1) prev[next[x]!] = prev[x]!;
  };
  const relink = (x: number) => {
    next[prev[x]!] = x;
    if (next[x] !== -1) prev[next[x]!] = x;
  };

  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  const cache = new StateCache(words);
  // Zobrist hashing keeps the hash of the linearized set O(1) to update; a fixed seed keeps
  // runs reproducible.
  const zob = new Int32Array(n);
  for (let i = 0, x = 0x2545f491; i < n; i++) {
    x = (x + 0x9e3779b9) | 0;
    let z = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    zob[i] = z ^ (z >>> 16);
  }

  // -1 = the op cannot take effect in this state, else the state after it.
  const step = (i: number, st: number): number => {
    switch (kind[i]) {
      case PUT:
        return arg[i]!;
      case GET:
        return st === arg[i] ? st : -1;
      case CAS_OK:
        return st === expect[i] ? arg[i]! : -1;
      case CAS_FAIL:
        return st !== expect[i] ? st : -1;
      default:
        return st === expect[i] ? arg[i]! : st;
    }
  };

  const stackNode = new Int32Array(n);
  const stackState = new Int32Array(n);
  let depth = 0;
  let state = 0;
  let hash = 0;
  let bestDepth = -1;
  let blocker = -1;
  let node = next[0]!;
  while (remaining > 0) {
    if (node !== -1 && (node & 1) === 1) {
      const i = (node - 1) >> 1;
      const s = step(i, state);
      if (s !== -1) {
        const w = i >>> 5;
        const m = 1 << (i & 31);
        bits[w]! |= m;
        if (cache.add(bits, hash ^ zob[i]!, s)) {
          if (--budget.left < 0) return BUDGET_EXCEEDED;
          stackNode[depth] = node;
          stackState[depth++] = state;
          hash ^= zob[i]!;
          state = s;
          unlink(node);
          if (hasRet(i)) {
            unlink(node + 1);
            remaining--;
          }
          node = next[0]!;
          continue;
        }
        bits[w]! &= ~m;
      }
      node = next[node]!;
    } else {
      // A return whose call is still unplaced: every op linearized so far must precede it, so
      // the current prefix is a dead end.
      if (depth > bestDepth && node !== -1) {
        bestDepth = depth;
        blocker = (node - 1) >> 1;
      }
      if (depth === 0) break;
      node = stackNode[--depth]!;
      state = stackState[depth]!;
      const i = (node - 1) >> 1;
      bits[i >>> 5]! &= ~(1 << (i & 31));
      hash ^= zob[i]!;
      if (hasRet(i)) {
        relink(node + 1);
        remaining++;
      }
      relink(node);
      node = next[node]!;
    }
  }
  if (remaining === 0) return undefined;
  const who = blocker >= 0 ? `; first op it could not fit: ${describe(ops[blocker]!)}` : '';
  return `not linearizable: best ordering placed ${bestDepth} of ${n} ops${who}`;
}

/** Set of (linearized-ops bitset, state) pairs, stored flat to keep millions of them cheap. */
class StateCache {
  private readonly heads = new Map<number, number>();
  private chain = new Int32Array(1024);
  private states = new Int32Array(1024);
  private arena: Uint32Array;
  private size = 0;

  constructor(private readonly words: number) {
    this.arena = new Uint32Array(1024 * words);
  }

  /** Adds the pair; false if it was already present. */
  add(bits: Uint32Array, setHash: number, state: number): boolean {
    const key = (setHash ^ Math.imul(state + 1, 0x9e3779b1)) >>> 0;
    const w = this.words;
    const first = this.heads.get(key) ?? -1;
    for (let e = first; e !== -1; e = this.chain[e]!) {
      if (this.states[e] !== state) continue;
      let j = 0;
      const base = e * w;
      while (j < w && this.arena[base + j] === bits[j]) j++;
      if (j === w) return false;
    }
    if (this.size === this.states.length) this.grow();
    const e = this.size++;
    this.states[e] = state;
    this.chain[e] = first;
    this.arena.set(bits, e * w);
    this.heads.set(key, e);
    return true;
  }

  private grow(): void {
    const cap = this.states.length * 2;
    const chain = new Int32Array(cap);
    chain.set(this.chain);
    this.chain = chain;
    const states = new Int32Array(cap);
    states.set(this.states);
    this.states = states;
    const arena = new Uint32Array(cap * this.words);
    arena.set(this.arena);
    this.arena = arena;
  }
}
