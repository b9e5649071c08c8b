// The floor of node:http on this machine (docs/measurements.md, issue 15): GET answers
// 4 KiB, PUT reads the body and answers 200 — no storage, no auth. Then measure it like
// any target, e.g.:
//   node bench/null-server.cjs 19950 & kubestorage bench read --mode http \
//     --endpoint http://127.0.0.1:19950 --server-pids $! --ceiling-requests 0
const http = require('node:http');
const body = Buffer.alloc(4096, 97);
const port = Number(process.argv[2] ?? 19950);
http
  .createServer({ keepAliveTimeout: 65000 }, (req, res) => {
    if (req.method === 'GET') {
      req.resume();
      res.writeHead(200, { 'content-length': body.length, etag: '"abc"' });
      res.end(body);
      return;
    }
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-length': 0, etag: '"abc"' });
      res.end();
    });
  })
  .listen(port, '127.0.0.1');
