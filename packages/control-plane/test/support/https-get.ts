import https from 'node:https';

/** GET over TLS to 127.0.0.1 as if DNS sent `name` there (SNI + Host), trusting `ca`. */
export function httpsGet(
  port: number,
  name: string,
  path: string,
  ca: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path, servername: name, headers: { host: name }, ca },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}
