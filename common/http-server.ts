// Listen/close for the internal node:http servers (store node, metadata).
import type http from 'node:http';
import type { AddressInfo } from 'node:net';

export async function listen(
  server: http.Server,
  host: string,
  port: number,
): Promise<AddressInfo> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server.address() as AddressInfo;
}

/** Stops accepting, lets requests in flight finish, drops idle keep-alive sockets. */
export function close(server: http.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
