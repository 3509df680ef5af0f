import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { QmpClient } from '../../src/vmm/qemu/qmp.ts';

// A scripted QMP peer on a real unix socket: greets, accepts qmp_capabilities, and hands
// every later command to the test's `onCommand`.
type Cmd = { execute: string; arguments?: Record<string, unknown>; id: string };

let dir: string;
let server: Server | undefined;
const sockets: Socket[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'qmp-'));
});

afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.length = 0;
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
  await rm(dir, { recursive: true, force: true });
});

function fakeQemu(
  path: string,
  onCommand: (cmd: Cmd, sock: Socket) => void,
  opts: { greet?: boolean } = {},
) {
  server = createServer((sock) => {
    sockets.push(sock);
    if (opts.greet !== false) sock.write('{"QMP": {"version": {}, "capabilities": []}}\r\n');
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const cmd = JSON.parse(buf.slice(0, nl)) as Cmd;
        buf = buf.slice(nl + 1);
        if (cmd.execute === 'qmp_capabilities')
          sock.write(`${JSON.stringify({ return: {}, id: cmd.id })}\r\n`);
        else onCommand(cmd, sock);
        nl = buf.indexOf('\n');
      }
    });
  });
  return new Promise<void>((r) => server!.listen(path, () => r()));
}

const reply = (sock: Socket, msg: unknown) => sock.write(`${JSON.stringify(msg)}\r\n`);

describe('QmpClient', () => {
  it('matches answers to commands by id, even when they come back out of order', async () => {
    const path = join(dir, 'q.sock');
    const held: { cmd: Cmd; sock: Socket }[] = [];
    await fakeQemu(path, (cmd, sock) => {
      held.push({ cmd, sock });
      if (held.length === 2) {
        for (const h of held.reverse())
          reply(h.sock, { return: { echo: h.cmd.execute }, id: h.cmd.id });
      }
    });
    const c = await QmpClient.connect(path);
    const [a, b] = await Promise.all([c.execute('query-status'), c.execute('query-name')]);
    expect(a).toEqual({ echo: 'query-status' });
    expect(b).toEqual({ echo: 'query-name' });
    await c.close();
  });

  it("turns a QMP error into a WrennError carrying QEMU's description", async () => {
    const path = join(dir, 'q.sock');
    await fakeQemu(path, (cmd, sock) =>
      reply(sock, { error: { class: 'GenericError', desc: 'Migration is disabled' }, id: cmd.id }),
    );
    const c = await QmpClient.connect(path);
    await expect(c.execute('migrate', { uri: 'exec:true' })).rejects.toMatchObject({
      code: 'internal',
      message: 'QMP migrate failed: Migration is disabled',
    });
    await c.close();
  });

  it('times out a command that gets no answer, and keeps working afterwards', async () => {
    const path = join(dir, 'q.sock');
    await fakeQemu(path, (cmd, sock) => {
      if (cmd.execute !== 'hang') reply(sock, { return: 'ok', id: cmd.id });
    });
    const c = await QmpClient.connect(path);
    await expect(c.execute('hang', undefined, 50)).rejects.toMatchObject({
      code: 'deadline_exceeded',
    });
    expect(await c.execute('query-status')).toBe('ok');
    await c.close();
  });

  it('rejects in-flight commands and event waits when the VM dies mid-command, and fails fast afterwards', async () => {
    const path = join(dir, 'q.sock');
    await fakeQemu(path, (_cmd, sock) => sock.destroy());
    const c = await QmpClient.connect(path);
    const ev = c.waitEvent('MIGRATION', undefined, 60_000);
    await expect(c.execute('migrate', { uri: 'exec:cat' }, 60_000)).rejects.toMatchObject({
      code: 'unavailable',
    });
    await expect(ev).rejects.toMatchObject({ code: 'unavailable' });
    expect(c.closed).toBe(true);
    await expect(c.execute('cont')).rejects.toMatchObject({ code: 'unavailable' });
  });

  it('delivers events to a matching waiter armed before the command', async () => {
    const path = join(dir, 'q.sock');
    await fakeQemu(path, (cmd, sock) => {
      reply(sock, { return: {}, id: cmd.id });
      reply(sock, { event: 'MIGRATION', data: { status: 'active' } });
      reply(sock, { event: 'MIGRATION', data: { status: 'completed' } });
    });
    const c = await QmpClient.connect(path);
    const seen: string[] = [];
    c.onEvent((e) => seen.push(String(e.data?.status)));
    const done = c.waitEvent('MIGRATION', (e) => e.data?.status === 'completed');
    await c.execute('migrate', { uri: 'exec:cat' });
    expect((await done).data).toEqual({ status: 'completed' });
    expect(seen).toEqual(['active', 'completed']);
    await c.close();
  });

  it('retries until the socket appears (QEMU still starting)', async () => {
    const path = join(dir, 'late.sock');
    const connecting = QmpClient.connect(path, { timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 200));
    await fakeQemu(path, (cmd, sock) => reply(sock, { return: 'late', id: cmd.id }));
    const c = await connecting;
    expect(await c.execute('query-status')).toBe('late');
    await c.close();
  });

  it('gives up with a clear error when no greeting comes (another client holds the monitor)', async () => {
    const path = join(dir, 'q.sock');
    await fakeQemu(path, () => {}, { greet: false });
    await expect(QmpClient.connect(path, { timeoutMs: 200 })).rejects.toMatchObject({
      code: 'deadline_exceeded',
      message: expect.stringContaining('greeting'),
    });
  });

  it('refuses a socket path that does not fit in sun_path', async () => {
    await expect(QmpClient.connect(join(dir, 'x'.repeat(120)))).rejects.toMatchObject({
      code: 'invalid_argument',
    });
  });
});
