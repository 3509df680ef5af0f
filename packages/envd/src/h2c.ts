import type { Server as HttpServer } from 'node:http';
import type { Http2Server } from 'node:http2';
import { createServer, type Server, type Socket } from 'node:net';
import { Duplex } from 'node:stream';

/** What an HTTP/2 client with prior knowledge sends first (RFC 9113 §3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * One TCP port for HTTP/1.1 and h2c (HTTP/2 over cleartext with prior knowledge): the first
 * bytes of a connection pick the server. Node's http2 server falls back to HTTP/1.1 only
 * under TLS, so the choice is made here. A connection that has not said which it is within
 * `sniffTimeoutMs` is dropped (the same bound HTTP/1.1 puts on a request's headers).
 */
export function dualProtocolServer(
  h1: HttpServer,
  h2: Http2Server,
  sniffTimeoutMs: number,
): { server: Server; dropUndecided(): void } {
  const undecided = new Set<Socket>();
  // noDelay: what node:http sets on its own sockets; a net server leaves Nagle on.
  const server = createServer({ noDelay: true }, (socket) => {
    let head: Buffer = Buffer.alloc(0);
    undecided.add(socket);
    const drop = () => socket.destroy();
    socket.once('close', () => undecided.delete(socket));
    const onData = (chunk: Buffer) => {
      head = head.length ? Buffer.concat([head, chunk]) : chunk;
      const n = Math.min(head.length, PREFACE.length);
      const isH2 = head.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (isH2 && head.length < PREFACE.length) return; // a prefix of both: wait for more
      undecided.delete(socket);
      socket.off('data', onData);
      socket.off('error', drop);
      socket.setTimeout(0);
      socket.off('timeout', drop); // keep-alive timeouts later on are the chosen server's
      socket.pause();
      if (isH2) {
        h2.emit('connection', replaying(socket, head));
        return;
      }
      socket.unshift(head);
      h1.emit('connection', socket);
      socket.resume();
    };
    socket.on('data', onData);
    socket.on('error', drop); // a reset before the first request is nobody's error
    socket.setTimeout(sniffTimeoutMs, drop);
  });
  // node:http tracks its connections (closeIdleConnections, headers timeout) from its own
  // 'listening' event, which a server fed sockets by hand never sees.
  server.on('listening', () => h1.emit('listening'));
  return {
    server,
    dropUndecided: () => {
      for (const s of undecided) s.destroy();
    },
  };
}

/**
 * The socket as a stream that first replays `head`. The http2 session reads a raw socket's
 * handle natively and would miss bytes already read in JS; over a plain Duplex it reads
 * through JS instead (slower per byte, still correct).
 */
function replaying(socket: Socket, head: Buffer): Duplex {
  const stream = new Duplex({
    read: () => void socket.resume(),
    write: (chunk, encoding, done) => void socket.write(chunk, encoding, done),
    final: (done) => void socket.end(done),
    destroy: (err, done) => {
      socket.destroy(err ?? undefined);
      done(err);
    },
  });
  stream.push(head);
  socket.on('data', (chunk) => {
    if (!stream.push(chunk)) socket.pause();
  });
  socket.on('end', () => stream.push(null));
  socket.on('error', (e) => stream.destroy(e));
  socket.on('close', () => stream.destroy());
  return stream;
}
