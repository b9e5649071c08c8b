// What a data directory shows an onlooker: files other users can read, and files whose
// bytes hold a secret (grep -r). Used by the secrets-at-rest tests (issue 12 item 3).
import fs from 'node:fs';
import path from 'node:path';

/** Every file and folder under `root` with a group or other permission bit. */
export function openToOthers(root: string): string[] {
  const open: string[] = [];
  const walk = (dir: string) => {
    for (const name of fs.readdirSync(dir)) {
      const p = path.join(dir, name);
      const st = fs.statSync(p);
      if ((st.mode & 0o077) !== 0)
        open.push(`${path.relative(root, p)} ${(st.mode & 0o777).toString(8)}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(root);
  return open;
}

/** Files under `root` whose bytes contain `needle` (grep -r). */
export function filesContaining(root: string, needle: string): string[] {
  const hits: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && fs.readFileSync(p).includes(needle)) hits.push(path.relative(root, p));
    }
  };
  walk(root);
  return hits;
}
