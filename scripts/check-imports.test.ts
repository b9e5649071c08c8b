import { describe, expect, it } from 'vitest';
import { cycles, layerViolations } from './check-imports.ts';

const g = (edges: Record<string, string[]>) =>
  new Map(Object.entries(edges).map(([k, v]) => [`/r/${k}`, v.map((d) => `/r/${d}`)]));

describe('check-imports', () => {
  it('finds a cycle through three files, and none in a chain', () => {
    const found = cycles(
      g({ 'a.ts': ['b.ts'], 'b.ts': ['c.ts'], 'c.ts': ['a.ts'], 'd.ts': ['a.ts'] }),
    );
    expect(found).toEqual([['/r/a.ts', '/r/b.ts', '/r/c.ts']]);
    expect(cycles(g({ 'a.ts': ['b.ts'], 'b.ts': ['c.ts'], 'c.ts': [] }))).toEqual([]);
  });

  it('flags an import from a lower component into a higher one, but not from its tests', () => {
    const graph = g({
      'data-path/x.ts': ['gateway/error.ts', 'store-node/api.ts'],
      'data-path/x.test.ts': ['gateway/app.ts'],
      'gateway/app.ts': ['data-path/x.ts'],
      'gateway/error.ts': [],
      'store-node/api.ts': [],
    });
    expect(layerViolations(graph, '/r')).toEqual(['data-path/x.ts -> gateway/error.ts']);
  });
});
