import { connect as http2Connect } from 'node:http2';
import { connect as tcpConnect } from 'node:net';
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { processv1 } from '@wrenn/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultOptions } from '../../src/config.ts';
import { startEnvd } from '../../src/server.ts';
import { type HostEnvd, rawClients, startHostEnvd } from '../helpers.ts';

let envd: HostEnvd;

beforeAll(async () => {
  envd = await startHostEnvd();
});
afterAll(async () => {
  await envd?.stop();
});

/** Connect's own Node client over HTTP/2 with prior knowledge (h2c for an http:// URL). */
function h2Process(binary: boolean) {
  const transport = createConnectTransport({
    baseUrl: envd.url,
    httpVersion: '2',
    useBinaryFormat: binary,
  });
  return createClient(processv1.Process, transport);
}

/** One request on a raw node:http2 session; resolves with the status, headers and body. */
function h2Request(
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(envd.url);
    session.on('error', reject);
    const req = session.request(headers);
    let text = '';
    let head: Record<string, unknown> = {};
    req.setEncoding('utf8');
    req.on('response', (h) => {
      head = h;
    });
    req.on('data', (d) => {
      text += d;
    });
    req.on('end', () => {
      session.close();
      resolve({ status: Number(head[':status']), headers: head, body: text });
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('h2c: HTTP/2 without TLS on the same port as HTTP/1.1', () => {
  it('serves a Connect unary call and a server stream over HTTP/2 (binary and JSON)', async () => {
    for (const binary of [true, false]) {
      const rpc = h2Process(binary);
      expect(Array.isArray((await rpc.list({})).processes)).toBe(true);
      const kinds: string[] = [];
      let out = '';
      let err = '';
      let exitCode: number | undefined;
      for await (const m of rpc.start({
        process: { cmd: '/bin/sh', args: ['-c', 'echo out; echo err >&2; exit 3'] },
        stdin: false,
      })) {
        const ev = m.event?.event;
        kinds.push(ev?.case ?? '?');
        if (ev?.case === 'data' && ev.value.output.case === 'stdout')
          out += Buffer.from(ev.value.output.value).toString();
        if (ev?.case === 'data' && ev.value.output.case === 'stderr')
          err += Buffer.from(ev.value.output.value).toString();
        if (ev?.case === 'end') exitCode = ev.value.exitCode;
      }
      expect(kinds[0]).toBe('start');
      expect(kinds.at(-1)).toBe('end');
      expect({ out, err, exitCode }).toEqual({ out: 'out\n', err: 'err\n', exitCode: 3 });
    }
  });

  it('a cancelled HTTP/2 stream ends the stream, not the process', async () => {
    const rpc = h2Process(true);
    const abort = new AbortController();
    let pid = 0;
    const stream = rpc.start(
      { process: { cmd: '/bin/sleep', args: ['30'] }, stdin: false },
      { signal: abort.signal },
    );
    const done = (async () => {
      for await (const m of stream) {
        if (m.event?.event.case === 'start') {
          pid = m.event.event.value.pid;
          abort.abort();
        }
      }
    })().catch((e) => e);
    expect((await done).code).toBe(1); // Canceled
    const h1 = rawClients(envd).process;
    expect((await h1.list({})).processes.map((p) => p.pid)).toContain(pid);
    await h1.sendSignal({
      process: { selector: { case: 'pid', value: pid } },
      signal: processv1.Signal.SIGKILL,
    });
  });

  it('answers plain routes over HTTP/2 too, errors included, while HTTP/1.1 keeps working', async () => {
    const health = await h2Request({ ':method': 'GET', ':path': '/health' });
    expect(health.status).toBe(204);
    expect(health.headers['x-envd-version']).toBe('0.6.4');
    const missing = await h2Request({ ':method': 'GET', ':path': '/no-such-route' });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toMatchObject({ code: 'not_found' });
    const bad = await h2Request(
      {
        ':method': 'POST',
        ':path': '/process.Process/List',
        'content-type': 'application/json',
      },
      '{not json',
    );
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ code: 'invalid_argument' });
    expect((await fetch(`${envd.url}/health`)).status).toBe(204);
  });

  it('/snapshot/prepare closes idle HTTP/2 sessions as it does idle HTTP/1.1 connections', async () => {
    const session = http2Connect(envd.url);
    const req = session.request({ ':method': 'GET', ':path': '/health' });
    req.resume();
    await new Promise((r) => req.on('end', r));
    const closed = new Promise((r) => session.once('close', r));
    const prep = await fetch(`${envd.url}/snapshot/prepare`, { method: 'POST' });
    expect(prep.status).toBe(204);
    await closed;
    expect(session.closed || session.destroyed).toBe(true);
  });

  it('survives connections that stop halfway through the preface or send garbage', async () => {
    const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
    for (const bytes of [
      'PRI * HTTP/2',
      '\x00\x01garbage\r\n\r\n',
      `${preface}not a frame at all`,
    ]) {
      await new Promise<void>((resolve) => {
        const s = tcpConnect(envd.port, '127.0.0.1', () => {
          s.end(bytes);
        });
        s.on('error', () => resolve());
        s.on('close', () => resolve());
        s.resume();
      });
    }
    expect((await h2Request({ ':method': 'GET', ':path': '/health' })).status).toBe(204);
    expect((await fetch(`${envd.url}/health`)).status).toBe(204);
  });

  it('close() does not wait for a connection that never said which protocol it speaks', async () => {
    const inProcess = await startEnvd({
      ...defaultOptions('host'),
      host: '127.0.0.1',
      port: 0,
      homeRoot: envd.homeRoot,
      defaultUser: 'root',
    });
    const silent = tcpConnect(inProcess.port, '127.0.0.1');
    await new Promise((r) => silent.once('connect', r));
    const gone = new Promise((r) => silent.once('close', r));
    await inProcess.close(); // would hang while the silent socket stayed open
    await gone;
    expect(silent.destroyed).toBe(true);
  });
});
