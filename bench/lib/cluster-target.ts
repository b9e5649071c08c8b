// A `kubestorage cluster up --data DIR` as a bench target (`cluster@DIR`): the requests go
// to its first gateway, signed with the root keys in DIR/cluster.json (sealed under
// DIR/cluster.secret), and its cost is the CPU of all the processes the file lists.
import fs from 'node:fs';
import path from 'node:path';
import { type ClusterFile, readClusterFile } from '../../cli/cluster.ts';

export interface ClusterTarget {
  endpoint: string;
  accessKey: string;
  secretKey: string;
  cluster: ClusterFile;
}

/** `keys`: the --access-key/--secret-key flags, used only when the file's keys cannot be opened. */
export function loadClusterTarget(
  dir: string,
  keys: { accessKey?: string; secretKey?: string } = {},
): ClusterTarget {
  const file = path.join(dir, 'cluster.json');
  let c: ClusterFile;
  try {
    c = readClusterFile(file);
  } catch (e) {
    // A cluster.json copied without its cluster.secret: the keys must come as flags.
    if (!(keys.accessKey && keys.secretKey && fs.existsSync(file))) {
      throw new Error(`${file}: ${(e as Error).message}`);
    }
    c = { ...(JSON.parse(fs.readFileSync(file, 'utf8')) as ClusterFile), secret: '' };
    c.accessKey = keys.accessKey;
    c.secretKey = keys.secretKey;
  }
  const endpoint = c.gateways?.[0];
  if (!endpoint) throw new Error(`${file} lists no gateway`);
  return { endpoint, accessKey: c.accessKey, secretKey: c.secretKey, cluster: c };
}
