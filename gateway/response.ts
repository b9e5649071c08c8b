// Response helpers shared by the handlers.
import { toXml, type XmlNode } from './xml.ts';

export function xmlResponse(
  root: string,
  body: XmlNode,
  status = 200,
  headers: Record<string, string> = {},
): Response {
  return new Response(toXml(root, body), {
    status,
    headers: { 'content-type': 'application/xml', ...headers },
  });
}

export function empty(status = 200, headers: Record<string, string> = {}): Response {
  return new Response(null, { status, headers });
}
