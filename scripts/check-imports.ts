// Fails when the relative imports between the project's .ts files form a cycle (type-only
// imports count too: a cycle of types is still two files that cannot be understood apart),
// or when a component imports one it sits below (LAYERS). Run: npm run check:imports
// (part of npm test).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const SKIP = new Set(['node_modules', 'data', '.git', '.tmp', 'bench-results', 'coverage']);

function walk(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name)) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

// from '...' in import/export statements, and import('...') calls.
const SPEC =
  /(?:^|\n)\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

export function importGraph(files: string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    const deps: string[] = [];
    for (const m of text.matchAll(SPEC)) {
      const spec = m[1] ?? m[2]!;
      if (!spec.endsWith('.ts')) continue;
      deps.push(resolve(dirname(f), spec));
    }
    graph.set(f, deps);
  }
  return graph;
}

/**
 * Folders that must not import from the folders listed: the lower parts of the system know
 * nothing of what is built on them. Tests are exempt (they may drive a CLI or a gateway).
 * store-node/ and directory/ talk to each other as services (heartbeats one way, volume
 * syncs the other), each through its own client, so neither is below the other.
 */
export const LAYERS: Record<string, string[]> = {
  common: ['store-node', 'directory', 'data-path', 'gateway', 'compose', 'cli', 'bench', 'test'],
  'store-node': ['data-path', 'gateway', 'compose', 'cli', 'bench', 'test'],
  directory: ['data-path', 'gateway', 'compose', 'cli', 'bench', 'test'],
  'data-path': ['gateway', 'compose', 'cli', 'bench', 'test'],
  gateway: ['compose', 'cli', 'bench', 'test'],
  compose: ['cli', 'bench', 'test'],
};

/** Imports that break LAYERS, as "from -> to" (paths relative to `base`). */
export function layerViolations(graph: Map<string, string[]>, base: string): string[] {
  const top = (f: string) => relative(base, f).split('/')[0] ?? '';
  const out: string[] = [];
  for (const [f, deps] of graph) {
    if (f.endsWith('.test.ts')) continue;
    const banned = LAYERS[top(f)];
    if (!banned) continue;
    for (const d of deps) {
      if (banned.includes(top(d))) out.push(`${relative(base, f)} -> ${relative(base, d)}`);
    }
  }
  return out.sort();
}

/** Every strongly connected component of more than one file (or a file importing itself). */
export function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(comp.sort());
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  const graph = importGraph(walk(root, []));
  const found = cycles(graph);
  for (const c of found)
    console.error(`import cycle: ${c.map((f) => relative(root, f)).join(' <-> ')}`);
  const upward = layerViolations(graph, root);
  for (const v of upward) console.error(`import against the layers: ${v}`);
  if (found.length > 0 || upward.length > 0) process.exit(1);
  console.log(`${graph.size} files: no import cycles, no imports against the layers`);
}
