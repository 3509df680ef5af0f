import { createServer } from 'node:http';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { closeWithGrace } from './net.ts';

describe('closeWithGrace', () => {
  it('cuts a connection that never sent a request once the grace period is over', async () => {
    const server = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const idle = connect(port, '127.0.0.1');
    await new Promise((r) => idle.once('connect', r));
    const closedByServer = new Promise((r) => idle.once('close', r));
    // Plain server.close() waits for this socket until Node's 60 s headers timeout.
    await closeWithGrace(server, () => new Promise<void>((r) => server.close(() => r())), 50);
    await closedByServer;
    expect(idle.destroyed).toBe(true);
    expect(server.listening).toBe(false);
  });
});
