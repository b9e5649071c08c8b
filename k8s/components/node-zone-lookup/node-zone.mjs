// Writes this pod's zone to the file named by the first argument: the pod's own
// topology.kubernetes.io/zone label when Kubernetes copied it from the node (env KS_ZONE,
// downward API), else the label of the Node named by env NODE_NAME, read from the API
// server with the service account token. An empty file means no zone (the node has no
// label). Any other failure exits non-zero, and the pod's init container is retried.
import fs from 'node:fs';
import https from 'node:https';

const ZONE_LABEL = 'topology.kubernetes.io/zone';
const out = process.argv[2];
if (!out) {
  process.stderr.write('usage: node node-zone.mjs OUTPUT_FILE\n');
  process.exit(2);
}

function nodeLabels(nodeName) {
  const sa = process.env.KS_SERVICE_ACCOUNT_DIR ?? '/var/run/secrets/kubernetes.io/serviceaccount';
  const token = fs.readFileSync(`${sa}/token`, 'utf8').trim();
  const ca = fs.readFileSync(`${sa}/ca.crt`);
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
  if (!host) throw new Error('KUBERNETES_SERVICE_HOST is not set: not in a pod?');
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host,
        port,
        path: `/api/v1/nodes/${encodeURIComponent(nodeName)}`,
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        ca,
        timeout: 10_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => {
          if (res.statusCode !== 200) {
            reject(
              new Error(`GET node ${nodeName}: HTTP ${res.statusCode}: ${body.slice(0, 300)}`),
            );
            return;
          }
          try {
            resolve(JSON.parse(body).metadata?.labels ?? {});
          } catch (e) {
            reject(e);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('API server timeout')));
    req.on('error', reject);
    req.end();
  });
}

try {
  let zone = process.env.KS_ZONE ?? '';
  let from = 'pod label';
  if (!zone) {
    const nodeName = process.env.NODE_NAME;
    if (!nodeName) throw new Error('NODE_NAME is not set (downward API spec.nodeName)');
    zone = (await nodeLabels(nodeName))[ZONE_LABEL] ?? '';
    from = `node ${nodeName}`;
  }
  fs.writeFileSync(out, zone);
  process.stdout.write(`zone ${JSON.stringify(zone)} (from the ${from})\n`);
} catch (e) {
  process.stderr.write(`node-zone: ${e.message}\n`);
  process.exit(1);
}
