#!/usr/bin/env node
// Summarizes V8 .cpuprofile files (node --cpu-prof): self time by function and by file,
// the top N of each, as shares of all sampled time (idle and GC shown as their own rows).
//
//   node bench/profile-top.mjs DIR_OR_FILE [N]
import fs from 'node:fs';
import path from 'node:path';

const target = process.argv[2];
const top = Number(process.argv[3] ?? 25);
if (!target) {
  console.error('usage: node bench/profile-top.mjs DIR_OR_FILE [N]');
  process.exit(2);
}
const files = fs.statSync(target).isDirectory()
  ? fs
      .readdirSync(target)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => path.join(target, f))
  : [target];

const byFn = new Map();
const byFile = new Map();
let total = 0;
for (const f of files) {
  const p = JSON.parse(fs.readFileSync(f, 'utf8'));
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  // Sample i lasted timeDeltas[i + 1] (the delta to the next sample).
  const self = new Map();
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0;
    self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + dt);
  }
  for (const [id, us] of self) {
    const n = nodes.get(id);
    const cf = n.callFrame;
    const file = cf.url
      ? cf.url.replace(/^file:\/\//, '').replace(/.*node_modules\//, 'nm:')
      : '(native)';
    const short = file.replace(`${process.cwd()}/`, '');
    const fn = `${cf.functionName || '(anonymous)'} ${short}:${cf.lineNumber + 1}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + us);
    const pkg = short.startsWith('nm:')
      ? short
          .split('/')
          .slice(0, short.startsWith('nm:@') ? 2 : 1)
          .join('/')
      : short;
    byFile.set(pkg, (byFile.get(pkg) ?? 0) + us);
    total += us;
  }
}

const show = (title, m) => {
  console.log(`\n${title}`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`);
  }
};
console.log(`${files.length} profile(s), ${(total / 1e6).toFixed(2)} s sampled`);
show('self time by function', byFn);
show('self time by file or package', byFile);
