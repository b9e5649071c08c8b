// Builds the s3-tests selection: every test function of the listed files minus the tests
// an exclude.txt rule matches (by pytest marker or by name), with counts per reason.
import fs from 'node:fs';
import path from 'node:path';

export interface Rule {
  kind: 'marker' | 'name';
  pattern: string;
  reason: string;
  re?: RegExp;
}

export interface ExcludeFile {
  files: string[];
  rules: Rule[];
}

export function parseExcludeFile(text: string): ExcludeFile {
  const files: string[] = [];
  const rules: Rule[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) throw new Error(`exclude.txt:${i + 1}: cannot parse: ${line}`);
    const [, kind, pattern, reason] = m as unknown as [string, string, string, string];
    if (kind === 'file') files.push(pattern);
    else if (kind === 'marker' || kind === 'name') {
      if (!reason) throw new Error(`exclude.txt:${i + 1}: a rule needs a reason`);
      rules.push({ kind, pattern, reason, re: kind === 'name' ? new RegExp(pattern) : undefined });
    } else throw new Error(`exclude.txt:${i + 1}: unknown kind ${kind}`);
  }
  return { files, rules };
}

export interface TestFunction {
  file: string;
  name: string;
  markers: string[];
}

/** Test functions of a pytest file with the markers decorating each (source scan). */
export function scanTests(file: string, source: string): TestFunction[] {
  const out: TestFunction[] = [];
  let markers: string[] = [];
  for (const line of source.split('\n')) {
    const mark = /^@pytest\.mark\.([A-Za-z_0-9]+)/.exec(line);
    if (mark) {
      markers.push(mark[1]!);
      continue;
    }
    const def = /^def (test_[A-Za-z_0-9]*)\s*\(/.exec(line);
    if (def) out.push({ file, name: def[1]!, markers });
    if (!line.startsWith('@') && !/^\s/.test(line) && line.trim() !== '') markers = [];
    if (def) markers = [];
  }
  return out;
}

export interface Selection {
  total: number;
  selected: TestFunction[];
  excluded: Map<string, TestFunction[]>;
}

export function select(checkout: string, spec: ExcludeFile): Selection {
  const selected: TestFunction[] = [];
  const excluded = new Map<string, TestFunction[]>();
  let total = 0;
  for (const file of spec.files) {
    const tests = scanTests(file, fs.readFileSync(path.join(checkout, file), 'utf8'));
    total += tests.length;
    for (const t of tests) {
      const rule = spec.rules.find((r) =>
        r.kind === 'marker' ? t.markers.includes(r.pattern) : r.re!.test(t.name),
      );
      if (!rule) selected.push(t);
      else excluded.set(rule.reason, [...(excluded.get(rule.reason) ?? []), t]);
    }
  }
  return { total, selected, excluded };
}
