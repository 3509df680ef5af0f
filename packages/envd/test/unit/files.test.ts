import { createHash, randomBytes } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { AuthenticationError, type Sandbox } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileSignature } from '../../src/auth.ts';
import { type HostEnvd, sdk, startHostEnvd } from '../helpers.ts';

const TOKEN = 'test-access-token';
let envd: HostEnvd;
let sbx: Sandbox;
let home: string;

beforeAll(async () => {
  envd = await startHostEnvd();
  const init = await fetch(`${envd.url}/init`, {
    method: 'POST',
    body: JSON.stringify({ accessToken: TOKEN }),
  });
  expect(init.status).toBe(204);
  sbx = sdk(envd, { accessToken: TOKEN });
  home = join(envd.homeRoot, 'root');
  await sbx.files.makeDir('.');
});
afterAll(async () => {
  await envd?.stop();
});

describe('/files through the e2b SDK', () => {
  it('writes and reads text', async () => {
    const info = await sbx.files.write('t/hello.txt', 'héllo wörld');
    expect(info).toMatchObject({
      name: 'hello.txt',
      type: 'file',
      path: join(home, 't/hello.txt'),
    });
    expect(await sbx.files.read('t/hello.txt')).toBe('héllo wörld');
  });

  it('round-trips binary bytes exactly', async () => {
    const data = randomBytes(300_000);
    await sbx.files.write('bin/blob', new Blob([data]));
    const back = await sbx.files.read('bin/blob', { format: 'bytes' });
    expect(Buffer.from(back).equals(data)).toBe(true);
  });

  it('writes several files in one multipart request', async () => {
    const res = await sbx.files.write([
      { path: 'multi/a.txt', data: 'A' },
      { path: 'multi/b/b.txt', data: 'B' },
      { path: join(home, 'multi/c.txt'), data: 'C' },
    ]);
    expect(res.map((r) => r.name)).toEqual(['a.txt', 'b.txt', 'c.txt']);
    expect(await readFile(join(home, 'multi/b/b.txt'), 'utf8')).toBe('B');
    expect(await readFile(join(home, 'multi/c.txt'), 'utf8')).toBe('C');
  });

  it('uploads gzip-encoded bodies and downloads gzip when asked', async () => {
    const text = 'compress me '.repeat(10_000);
    await sbx.files.write('gz/file.txt', text, { gzip: true });
    expect(await readFile(join(home, 'gz/file.txt'), 'utf8')).toBe(text);
    expect(await sbx.files.read('gz/file.txt', { gzip: true })).toBe(text);
    // And on the wire the response really is gzip.
    const res = await fetch(`${envd.url}/files?path=gz/file.txt`, {
      headers: { 'X-Access-Token': TOKEN, 'Accept-Encoding': 'gzip' },
    });
    expect(res.headers.get('content-encoding')).toBe('gzip');
  });

  it('stores metadata sent as X-Metadata-* headers and reports it in EntryInfo', async () => {
    const info = await sbx.files.write('md.txt', 'x', {
      metadata: { owner: 'alice', 'build-id': '42' },
    });
    expect(info.metadata).toEqual({ owner: 'alice', 'build-id': '42' });
    expect((await sbx.files.getInfo('md.txt')).metadata).toEqual({
      owner: 'alice',
      'build-id': '42',
    });
    await sbx.files.rename('md.txt', 'md2.txt');
    expect((await sbx.files.getInfo('md2.txt')).metadata).toEqual({
      owner: 'alice',
      'build-id': '42',
    });
  });

  it('streams a 100 MiB file both ways without corruption', async () => {
    const size = 100 << 20;
    const chunk = randomBytes(1 << 20);
    const want = createHash('sha256');
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < size / chunk.length; i++) {
          c.enqueue(chunk);
          want.update(chunk);
        }
        c.close();
      },
    });
    await sbx.files.write('big.bin', body);
    expect((await stat(join(home, 'big.bin'))).size).toBe(size);
    const stream = await sbx.files.read('big.bin', { format: 'stream' });
    const got = createHash('sha256');
    let n = 0;
    for await (const c of stream) {
      got.update(c);
      n += c.length;
    }
    expect(n).toBe(size);
    expect(got.digest('hex')).toBe(want.digest('hex'));
  }, 600_000); // a timeout, not an assertion: the 2 shared cores may be busy with VMs

  it('downloads and uploads through signed URLs, without the token header', async () => {
    await writeFile(join(home, 'signed.txt'), 'signed content');
    const down = await sbx.downloadUrl('signed.txt', { useSignatureExpiration: 60 });
    expect(down).toContain('signature=v1_');
    const r = await fetch(down);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('signed content');

    const up = await sbx.uploadUrl('uploaded-signed.txt');
    const form = new FormData();
    form.append('file', new Blob(['via url']), 'uploaded-signed.txt');
    const u = await fetch(up, { method: 'POST', body: form });
    expect(u.status).toBe(200);
    expect(await readFile(join(home, 'uploaded-signed.txt'), 'utf8')).toBe('via url');
  });

  it('rejects an expired, tampered or wrong-operation signature with 401', async () => {
    const exp = Math.floor(Date.now() / 1000) - 10;
    const expired = fileSignature({
      path: 'signed.txt',
      operation: 'read',
      username: '',
      token: TOKEN,
      expiration: exp,
    });
    const r1 = await fetch(
      `${envd.url}/files?path=signed.txt&signature=${expired}&signature_expiration=${exp}`,
    );
    expect(r1.status).toBe(401);
    expect(await r1.json()).toEqual({ code: 'unauthenticated', message: 'signature expired' });

    const good = new URL(await sbx.downloadUrl('signed.txt'));
    good.searchParams.set('path', 'other.txt'); // signature was for signed.txt
    expect((await fetch(good)).status).toBe(401);

    const readSig = fileSignature({ path: 'x.txt', operation: 'read', username: '', token: TOKEN });
    const w = await fetch(`${envd.url}/files?path=x.txt&signature=${readSig}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: 'nope',
    });
    expect(w.status).toBe(401);
  });

  it('requires the access token once /init set one', async () => {
    const r = await fetch(`${envd.url}/files?path=signed.txt`);
    expect(r.status).toBe(401);
    const rpc = await fetch(`${envd.url}/process.Process/List`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(rpc.status).toBe(401);
    expect((await fetch(`${envd.url}/health`)).status).toBe(204);
    const anon = sdk(envd); // no token
    await expect(anon.files.read('signed.txt')).rejects.toBeInstanceOf(AuthenticationError);
  });

  it('a failed upload leaves the previous file intact', async () => {
    await writeFile(join(home, 'keep.txt'), 'original');
    const r = await fetch(`${envd.url}/files?path=keep.txt`, {
      method: 'POST',
      headers: {
        'X-Access-Token': TOKEN,
        'content-type': 'application/octet-stream',
        'content-encoding': 'gzip',
      },
      body: Buffer.concat([
        gzipSync(Buffer.from('new content')).subarray(0, 12),
        Buffer.from('garbage'),
      ]),
    });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(await readFile(join(home, 'keep.txt'), 'utf8')).toBe('original');
  });

  it('answers a directory download with invalid_argument and a missing path with 404', async () => {
    const d = await fetch(`${envd.url}/files?path=multi`, { headers: { 'X-Access-Token': TOKEN } });
    expect(d.status).toBe(400);
    expect(((await d.json()) as { code: string }).code).toBe('invalid_argument');
    const m = await fetch(`${envd.url}/files?path=missing.txt`, {
      headers: { 'X-Access-Token': TOKEN },
    });
    expect(m.status).toBe(404);
    expect(((await m.json()) as { code: string }).code).toBe('not_found');
  });

  it('gzip round trip of raw bytes over plain HTTP', async () => {
    const data = randomBytes(50_000);
    const up = await fetch(`${envd.url}/files?path=raw.gz.bin`, {
      method: 'POST',
      headers: {
        'X-Access-Token': TOKEN,
        'content-type': 'application/octet-stream',
        'content-encoding': 'gzip',
      },
      body: gzipSync(data),
    });
    expect(up.status).toBe(200);
    const res = await fetch(`${envd.url}/files?path=raw.gz.bin`, {
      headers: { 'X-Access-Token': TOKEN, 'accept-encoding': 'gzip' },
    });
    // fetch transparently gunzips; compare against the source bytes
    expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
    expect(gunzipSync(gzipSync(data)).equals(data)).toBe(true);
  });
});
