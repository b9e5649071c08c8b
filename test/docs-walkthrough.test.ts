// Keeps the documentation honest while the code moves under it:
//  - every `path/to/file.ts` `name` pair in docs/walkthrough.md names a file that exists and
//    declares that function, class, const, interface or type (`Class.method`: a member of
//    that class), reported by walk and step;
//  - every relative file path cited in README.md, docs/*.md and the component notes
//    (cache/README.md, store-node/FORMAT.md, k8s/README.md; links and code spans) exists.
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');
const WALKTHROUGH = 'docs/walkthrough.md';
/** The notes kept beside their component's code, checked like docs/. */
const COMPONENT_DOCS = ['cache/README.md', 'store-node/FORMAT.md', 'k8s/README.md'];

interface Pair {
  file: string;
  name: string;
  /** "walk (a) …, step 7 (docs/walkthrough.md:42)" */
  where: string;
}

const CODE_SPAN = /`([^`\n]+)`/g;
const NAME = /^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)?$/;

/** Fenced code blocks blanked out (line count kept), so line numbers stay right. */
function withoutFences(text: string): string {
  return text.replace(/^```[^\n]*\n[\s\S]*?^```[^\n]*$/gm, (block) => block.replace(/[^\n]/g, ''));
}

/** The `file.ts` `name` pairs of a walkthrough, with the walk and step each belongs to. */
function walkthroughPairs(text: string, docName = WALKTHROUGH): Pair[] {
  const pairs: Pair[] = [];
  let walk = '(introduction)';
  let step: string | null = null;
  /** The last file a step named: a bare `Class.member` after it is looked up there. */
  let stepFile: string | null = null;
  const lines = withoutFences(text).split('\n');
  lines.forEach((line, i) => {
    const heading = /^##\s+(.*)$/.exec(line);
    if (heading) {
      walk = heading[1]!.trim();
      step = null;
      return;
    }
    if (/^#{3,}\s/.test(line)) return;
    const item = /^(\d+)\.\s/.exec(line);
    if (item) {
      step = item[1]!;
      stepFile = null;
    } else if (line.trim() !== '' && !/^\s/.test(line)) step = null; // not a step's continuation
    // A pair may be split by a line break: the next line's leading span counts here.
    const next = /^\s*(`[^`\n]+`)/.exec(lines[i + 1] ?? '')?.[1] ?? '';
    const joined = `${line} ${next}`;
    const spans = [...joined.matchAll(CODE_SPAN)];
    // Within a step, a `Class.member` not right after a file belongs to the step's last file.
    for (let k = 0; step !== null && k < spans.length; k++) {
      const s = spans[k]!;
      if (s.index >= line.length) break;
      if (s[1]!.endsWith('.ts')) stepFile = s[1]!;
      const prev = spans[k - 1];
      const afterFile =
        prev !== undefined &&
        prev[1]!.endsWith('.ts') &&
        joined.slice(prev.index + prev[0].length, s.index).trim() === '';
      if (stepFile && !afterFile && /^[A-Z][\w$]*\.[A-Za-z_$][\w$]*$/.test(s[1]!)) {
        pairs.push({
          file: stepFile,
          name: s[1]!,
          where: `walk "${walk}", step ${step} (${docName}:${i + 1})`,
        });
      }
    }
    for (let k = 0; k + 1 < spans.length; k++) {
      const a = spans[k]!;
      const b = spans[k + 1]!;
      if (a.index >= line.length) break;
      const between = joined.slice(a.index + a[0].length, b.index);
      if (!a[1]!.endsWith('.ts') || between.trim() !== '' || !NAME.test(b[1]!)) continue;
      const at = step === null ? 'text outside the steps' : `step ${step}`;
      pairs.push({
        file: a[1]!,
        name: b[1]!,
        where: `walk "${walk}", ${at} (${docName}:${i + 1})`,
      });
    }
  });
  return pairs;
}

interface Declarations {
  top: Set<string>;
  members: Map<string, Set<string>>;
}

const declCache = new Map<string, Declarations>();

function declarations(file: string): Declarations {
  const cached = declCache.get(file);
  if (cached) return cached;
  const src = ts.createSourceFile(
    file,
    fs.readFileSync(path.join(ROOT, file), 'utf8'),
    ts.ScriptTarget.Latest,
    false,
    ts.ScriptKind.TS,
  );
  const top = new Set<string>();
  const members = new Map<string, Set<string>>();
  for (const st of src.statements) {
    if (
      (ts.isFunctionDeclaration(st) ||
        ts.isInterfaceDeclaration(st) ||
        ts.isTypeAliasDeclaration(st) ||
        ts.isEnumDeclaration(st)) &&
      st.name
    ) {
      top.add(st.name.text);
    } else if (ts.isClassDeclaration(st) && st.name) {
      top.add(st.name.text);
      const names = new Set<string>();
      for (const m of st.members) {
        if (m.name && (ts.isIdentifier(m.name) || ts.isPrivateIdentifier(m.name))) {
          names.add(m.name.text);
        }
      }
      members.set(st.name.text, names);
    } else if (ts.isVariableStatement(st)) {
      for (const d of st.declarationList.declarations) {
        if (ts.isIdentifier(d.name)) top.add(d.name.text);
      }
    }
  }
  const out = { top, members };
  declCache.set(file, out);
  return out;
}

/** What is wrong with one pair, or null. */
function checkPair(p: Pair): string | null {
  if (!fs.existsSync(path.join(ROOT, p.file))) {
    return `${p.where}: file \`${p.file}\` does not exist (step names \`${p.name}\`)`;
  }
  const d = declarations(p.file);
  const [cls, member] = p.name.split('.') as [string, string | undefined];
  if (member === undefined) {
    if (d.top.has(cls)) return null;
    return `${p.where}: \`${p.file}\` declares no top-level \`${cls}\` (function, class, const, interface or type)`;
  }
  const m = d.members.get(cls);
  if (!m)
    return `${p.where}: \`${p.file}\` declares no class \`${cls}\` (step names \`${p.name}\`)`;
  if (!m.has(member))
    return `${p.where}: class \`${cls}\` in \`${p.file}\` has no member \`${member}\``;
  return null;
}

const PATH_TOKEN = /^(?:\.{1,2}\/)?[\w@.-]+(?:\/[\w@.-]*)*$/;
const FILE_EXT = /\.(?:ts|js|md|sh|txt)$/;

interface Cited {
  cited: string;
  /** Repository-relative paths it may stand for; it exists when one of them does. */
  candidates: string[];
  line: number;
}

/**
 * Relative repository paths cited in a markdown file: link targets (relative to the file),
 * and path-like tokens in code spans (relative to the repository root, or for a component
 * note to its folder too). In a table row
 * whose first cell names folders (`gateway/`), a file name may also be relative to them.
 */
function citedPaths(text: string, docPath: string): Cited[] {
  const out: Cited[] = [];
  const docDir = path.posix.dirname(docPath);
  withoutFences(text)
    .split('\n')
    .forEach((line, i) => {
      for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!.split('#')[0]!;
        if (target === '' || /^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
        const resolved = path.posix.normalize(path.posix.join(docDir, target));
        out.push({ cited: m[1]!, candidates: [resolved], line: i + 1 });
      }
      const firstCell = line.startsWith('|') ? (line.split('|')[1] ?? '') : '';
      const bases = [...firstCell.matchAll(CODE_SPAN)]
        .map((m) => m[1]!)
        .filter((s) => s.endsWith('/') && PATH_TOKEN.test(s));
      for (const m of line.matchAll(CODE_SPAN)) {
        for (const token of m[1]!.split(/\s+/)) {
          const t = token.replace(/[,;:]+$/, '');
          if (!PATH_TOKEN.test(t) || t.startsWith('/') || /^\.\w+$/.test(t)) continue;
          // `dir/file.ts`, `dir/`, or a bare file name with a source extension.
          if (!FILE_EXT.test(t) && !(t.includes('/') && t.endsWith('/'))) continue;
          const own = path.posix.normalize(t);
          const candidates = [
            own,
            ...bases.filter((b) => b !== t).map((b) => path.posix.join(b, t)),
            // A component's note may cite its own folder's files from there (k8s/README.md).
            ...(COMPONENT_DOCS.includes(docPath) ? [path.posix.join(docDir, t)] : []),
          ];
          out.push({ cited: t, candidates, line: i + 1 });
        }
      }
    });
  return out;
}

function docFiles(): string[] {
  const docs = fs
    .readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs.sort(), ...COMPONENT_DOCS];
}

describe('docs/walkthrough.md', () => {
  const text = fs.readFileSync(path.join(ROOT, WALKTHROUGH), 'utf8');
  const pairs = walkthroughPairs(text);

  it('names steps in each of the three walks', () => {
    const walks = new Set(pairs.map((p) => /walk "([^"]*)"/.exec(p.where)![1]));
    expect([...walks].filter((w) => /^\([abc]\)/.test(w!))).toHaveLength(3);
    expect(pairs.length).toBeGreaterThan(60);
  });

  it('every `file.ts` `name` pair names an existing file that declares the name', () => {
    const stale = pairs.map(checkPair).filter((e): e is string => e !== null);
    expect(stale, `stale walkthrough steps:\n${stale.join('\n')}`).toEqual([]);
  });
});

describe('file paths cited in README.md and docs/*.md', () => {
  it.each(docFiles())('%s cites only files that exist', (doc) => {
    const text = fs.readFileSync(path.join(ROOT, doc), 'utf8');
    const missing = citedPaths(text, doc)
      .filter((c) => !c.candidates.some((f) => fs.existsSync(path.join(ROOT, f))))
      .map((c) => `${doc}:${c.line}: \`${c.cited}\` does not exist`);
    expect(missing, `missing files:\n${missing.join('\n')}`).toEqual([]);
  });
});

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchors(mdFile: string): Set<string> {
  const text = withoutFences(fs.readFileSync(path.join(ROOT, mdFile), 'utf8'));
  return new Set([...text.matchAll(/^#{1,6}\s+(.*)$/gm)].map((m) => slug(m[1]!)));
}

describe('links to a heading in README.md and docs/*.md', () => {
  it.each(docFiles())('%s links only to headings that exist', (doc) => {
    const text = fs.readFileSync(path.join(ROOT, doc), 'utf8');
    const broken: string[] = [];
    withoutFences(text)
      .split('\n')
      .forEach((line, i) => {
        for (const m of line.matchAll(/\]\(([^)\s#]*)#([^)\s]+)\)/g)) {
          const file = m[1] ? path.posix.join(path.posix.dirname(doc), m[1]) : doc;
          if (!file.endsWith('.md') || !fs.existsSync(path.join(ROOT, file))) continue;
          if (!anchors(file).has(m[2]!)) {
            broken.push(`${doc}:${i + 1}: \`${m[0].slice(1)}\`: no heading #${m[2]} in ${file}`);
          }
        }
      });
    expect(broken, `broken anchors:\n${broken.join('\n')}`).toEqual([]);
  });
});

describe('the checks themselves', () => {
  it('report a wrong name, a wrong member, a missing class and a missing file, by step', () => {
    const bad = [
      '## (z) A walk that is wrong',
      '',
      '1. `gateway/put.ts` `putObject` — right.',
      '2. `gateway/put.ts` `putObjectNoSuch` — wrong name.',
      '3. `store-node/volume.ts` `Volume.noSuchMethod` — wrong member,',
      '   continued: `store-node/volume.ts` `NoSuchClass.write`.',
      '4. `gateway/no-such-file.ts` `route` — missing file.',
      '5. `store-node/volume.ts` `Volume.read` — then `Volume.write` (right) and `Volume.nope`.',
      'Text: `gateway/put.ts`',
      '`noSuchFunction` split over two lines.',
    ].join('\n');
    const errors = walkthroughPairs(bad, 'bad.md')
      .map(checkPair)
      .filter((e): e is string => e !== null);
    expect(errors).toEqual([
      'walk "(z) A walk that is wrong", step 2 (bad.md:4): `gateway/put.ts` declares no top-level `putObjectNoSuch` (function, class, const, interface or type)',
      'walk "(z) A walk that is wrong", step 3 (bad.md:5): class `Volume` in `store-node/volume.ts` has no member `noSuchMethod`',
      'walk "(z) A walk that is wrong", step 3 (bad.md:6): `store-node/volume.ts` declares no class `NoSuchClass` (step names `NoSuchClass.write`)',
      'walk "(z) A walk that is wrong", step 4 (bad.md:7): file `gateway/no-such-file.ts` does not exist (step names `route`)',
      'walk "(z) A walk that is wrong", step 5 (bad.md:8): class `Volume` in `store-node/volume.ts` has no member `nope`',
      'walk "(z) A walk that is wrong", text outside the steps (bad.md:9): `gateway/put.ts` declares no top-level `noSuchFunction` (function, class, const, interface or type)',
    ]);
  });

  it('make GitHub anchors', () => {
    expect(slug("Local cluster: the paper's fault experiment")).toBe(
      'local-cluster-the-papers-fault-experiment',
    );
    expect(slug('(c) Where a node failure is handled')).toBe('c-where-a-node-failure-is-handled');
  });

  it('find cited paths in links and code spans, not in URLs, absolute paths or fences', () => {
    const md = [
      'See [format](../store-node/FORMAT.md#needles), `gateway/router.ts`, `bench/` and',
      '`bench/nginx-baseline.sh start DIR PORT`; not [site](https://example.com), `/tmp/x`,',
      '`cluster.json` or `x-amz-meta-*`.',
      '```sh',
      'cat not/cited.ts',
      '```',
    ].join('\n');
    expect(citedPaths(md, 'docs/x.md').map((c) => c.candidates)).toEqual([
      ['store-node/FORMAT.md'],
      ['gateway/router.ts'],
      ['bench/'],
      ['bench/nginx-baseline.sh'],
    ]);
    const row = '| `gateway/`, `cli/` | `app.ts` (front), `auth/sigv4.ts` |';
    expect(citedPaths(row, 'README.md').map((c) => c.candidates)).toEqual([
      ['gateway/', 'cli/gateway/'],
      ['cli/', 'gateway/cli/'],
      ['app.ts', 'gateway/app.ts', 'cli/app.ts'],
      ['auth/sigv4.ts', 'gateway/auth/sigv4.ts', 'cli/auth/sigv4.ts'],
    ]);
  });
});
