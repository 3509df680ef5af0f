import http from 'node:http';
import https from 'node:https';
import { type SandboxTls, serveSandboxTls } from '@wrenn/control-plane/e2b/tls.ts';
import * as e2bNew from 'e2b';
import * as e2bOld from 'e2b-246';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startWrenn, type TestWrenn } from './wrenn.ts';

/**
 * E2B compatibility: the official SDK, unmodified, pinned at the current release and at
 * 2.46.1 (whose create and connect take the v1 paths), against a real Wrenn — control
 * plane + agent + QEMU VMs under TCG, `base` template — pointed at with E2B_API_URL,
 * E2B_SANDBOX_URL and E2B_API_KEY, as docs/e2b.md tells users. Only the public SDK API is
 * used, except where a case checks what a user's own HTTP client sees (signed URLs, ports).
 *
 * To keep CI time down, each SDK version shares one sandbox (`sbx`) across the cases that
 * do not interfere, and a second one (`other`) for list paging and pause/resume.
 */

const SANDBOX_DOMAIN = 'sbx.wrenn.test';
let w: TestWrenn;
let undoEnv: () => void;
let tls: SandboxTls;

beforeAll(async () => {
  w = await startWrenn(inject('wrennDir'), { sandboxDomain: SANDBOX_DOMAIN });
  undoEnv = w.useAsE2b();
  tls = await serveSandboxTls(w.cp.server, { domain: SANDBOX_DOMAIN, port: 0, dir: w.dir });
});
afterAll(async () => {
  undoEnv?.();
  await tls?.close();
  await w?.close();
});

/** Polls until `fn` returns a truthy value; the test's own timeout bounds it. */
async function eventually<T>(
  fn: () => T | Promise<T>,
  what: string,
  tries = 600,
): Promise<NonNullable<T>> {
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`never happened: ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

/**
 * A request to the gateway as if wildcard DNS sent `host` to it (domain mode): plain HTTP,
 * or HTTPS with SNI `host` trusting `ca`.
 */
function getWithHost(
  url: string,
  host: string,
  path: string,
  ca?: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const opts = { host: u.hostname, port: u.port, path, headers: { host } };
    const onRes = (res: http.IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    };
    const req = ca
      ? https.request({ ...opts, servername: host, ca }, onRes)
      : http.request(opts, onRes);
    req.on('error', reject);
    req.end();
  });
}

const run = `r${Date.now().toString(36)}`;

// The two SDKs' classes differ in private members only; type both as the current one.
const SDKS: [string, typeof e2bNew][] = [
  ['2.51.0', e2bNew],
  ['2.46.1', e2bOld as unknown as typeof e2bNew],
];

for (const [version, sdk] of SDKS) {
  type Sbx = InstanceType<typeof sdk.Sandbox>;
  const { Sandbox, CommandExitError, FilesystemEventType, FileType, SandboxNotFoundError } = sdk;
  const metadata = { suite: 'e2b-compat', sdk: version, run };

  describe.sequential(`e2b ${version}`, () => {
    let sbx: Sbx;
    let other: Sbx;
    /** Client clock before and after create: the deadline is 600 s after some instant between. */
    let createdWithin: [number, number];

    beforeAll(async () => {
      const before = Date.now();
      sbx = await Sandbox.create('base', {
        metadata,
        envs: { WRENN_E2B: 'from-create' },
        timeoutMs: 600_000,
      });
      createdWithin = [before, Date.now()];
    });
    afterAll(async () => {
      await sbx?.kill().catch(() => undefined);
      await other?.kill().catch(() => undefined);
    });

    it('create applies metadata, env vars and timeout; getInfo reports them', async () => {
      const info = await sbx.getInfo();
      expect(info.sandboxId).toBe(sbx.sandboxId);
      expect(info.templateId).toBe('base');
      expect(info.metadata).toEqual(metadata);
      expect(info.state).toBe('running');
      expect(info.envdVersion).toMatch(/^0\.6\.\d+$/);
      // Same host, same clock: the timeout counts 600 s from a moment during the create call.
      expect(info.endAt.getTime()).toBeGreaterThanOrEqual(createdWithin[0] + 600_000);
      expect(info.endAt.getTime()).toBeLessThanOrEqual(createdWithin[1] + 600_000);
      expect(info.startedAt.getTime()).toBeGreaterThanOrEqual(createdWithin[0] - 1);
      expect(info.startedAt.getTime()).toBeLessThanOrEqual(createdWithin[1]);
      expect((await sbx.commands.run('echo $WRENN_E2B')).stdout).toBe('from-create\n');
      expect(await sbx.isRunning()).toBe(true);
    });

    it('setTimeout moves end-at; connect with a shorter timeout never shortens it', async () => {
      const before = (await sbx.getInfo()).endAt.getTime();
      await sbx.setTimeout(1_200_000);
      const extended = (await sbx.getInfo()).endAt.getTime();
      expect(extended).toBeGreaterThan(before);
      await Sandbox.connect(sbx.sandboxId, { timeoutMs: 60_000 });
      expect((await sbx.getInfo()).endAt.getTime()).toBe(extended);
    });

    it('commands.run: stdout, stderr, exit code, envs, cwd, users', async () => {
      const r = await sbx.commands.run('echo out; echo err >&2');
      expect(r).toMatchObject({ stdout: 'out\n', stderr: 'err\n', exitCode: 0 });
      const failed = await sbx.commands.run('echo bad >&2; exit 3').catch((e: unknown) => e);
      expect(failed).toBeInstanceOf(CommandExitError);
      expect((failed as InstanceType<typeof CommandExitError>).exitCode).toBe(3);
      expect((failed as InstanceType<typeof CommandExitError>).stderr).toBe('bad\n');
      expect((await sbx.commands.run('echo "$A-$B"', { envs: { A: 'x', B: 'y z' } })).stdout).toBe(
        'x-y z\n',
      );
      expect((await sbx.commands.run('pwd', { cwd: '/tmp' })).stdout).toBe('/tmp\n');
      expect((await sbx.commands.run('whoami; echo $HOME; pwd')).stdout).toBe(
        'user\n/home/user\n/home/user\n',
      );
      expect((await sbx.commands.run('whoami', { user: 'root' })).stdout).toBe('root\n');
      expect((await sbx.commands.run('whoami', { user: 'user' })).stdout).toBe('user\n');
    });

    it('commands.run streams to onStdout/onStderr callbacks', async () => {
      const out: string[] = [];
      const err: string[] = [];
      const r = await sbx.commands.run('for i in 1 2 3; do echo o$i; echo e$i >&2; done', {
        onStdout: (d) => void out.push(d),
        onStderr: (d) => void err.push(d),
      });
      expect(out.join('')).toBe('o1\no2\no3\n');
      expect(err.join('')).toBe('e1\ne2\ne3\n');
      expect(r.stdout).toBe('o1\no2\no3\n');
    });

    it('a command past its timeoutMs is stopped with a TimeoutError', async () => {
      const e = await sbx.commands.run('sleep 600', { timeoutMs: 2_000 }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(sdk.TimeoutError);
    });

    it('background command: list, connect by pid, kill', async () => {
      const h = await sbx.commands.run('echo started; sleep 100000', { background: true });
      expect(h.pid).toBeGreaterThan(0);
      const listed = await sbx.commands.list();
      expect(listed.map((p) => p.pid)).toContain(h.pid);
      const seen: string[] = [];
      const again = await sbx.commands.connect(h.pid, { onStdout: (d) => void seen.push(d) });
      expect(again.pid).toBe(h.pid);
      expect(await sbx.commands.kill(h.pid)).toBe(true);
      const end = await again.wait().catch((x: unknown) => x);
      expect(end).toBeInstanceOf(CommandExitError);
      expect((await sbx.commands.list()).map((p) => p.pid)).not.toContain(h.pid);
      expect(await sbx.commands.kill(h.pid)).toBe(false);
    });

    it('sendStdin and closeStdin reach a command started with stdin', async () => {
      const h = await sbx.commands.run('cat', { background: true, stdin: true });
      await sbx.commands.sendStdin(h.pid, 'hello ');
      await sbx.commands.sendStdin(h.pid, 'stdin\n');
      await sbx.commands.closeStdin(h.pid);
      const r = await h.wait();
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe('hello stdin\n');
    });

    it('pty: create, sendInput, resize, kill', async () => {
      const chunks: Uint8Array[] = [];
      const text = () => Buffer.concat(chunks.map((c) => Buffer.from(c))).toString('utf8');
      const pty = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => void chunks.push(d) });
      expect(pty.pid).toBeGreaterThan(0);
      await sbx.pty.sendInput(pty.pid, new TextEncoder().encode('stty size; echo pty-$((6*7))\n'));
      await eventually(
        () => text().includes('24 80') && text().includes('pty-42'),
        'pty echo and size 24x80',
      );
      await sbx.pty.resize(pty.pid, { cols: 100, rows: 40 });
      await sbx.pty.sendInput(pty.pid, new TextEncoder().encode('stty size\n'));
      await eventually(() => text().includes('40 100'), 'pty resized to 40x100');
      expect(await sbx.pty.kill(pty.pid)).toBe(true);
      await pty.wait().catch(() => undefined);
      expect((await sbx.commands.list()).map((p) => p.pid)).not.toContain(pty.pid);
    });

    it('files: write and read text, bytes, blob and stream', async () => {
      const info = await sbx.files.write('/home/user/t/hello.txt', 'hello wrenn\n');
      expect(info.path).toBe('/home/user/t/hello.txt');
      expect(await sbx.files.read('/home/user/t/hello.txt')).toBe('hello wrenn\n');
      const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
      await sbx.files.write('/home/user/t/all.bin', bytes.buffer);
      expect(
        Buffer.from(await sbx.files.read('/home/user/t/all.bin', { format: 'bytes' })),
      ).toEqual(Buffer.from(bytes));
      await sbx.files.write('t/blob.bin', new Blob([bytes]));
      const blob = await sbx.files.read('/home/user/t/blob.bin', { format: 'blob' });
      expect(Buffer.from(await blob.arrayBuffer())).toEqual(Buffer.from(bytes));
      const big = Buffer.alloc(3 << 20, 'wrenn-');
      await sbx.files.write('/home/user/t/big.txt', new Blob([big]).stream());
      const stream = await sbx.files.read('/home/user/t/big.txt', { format: 'stream' });
      const parts: Uint8Array[] = [];
      for await (const p of stream as unknown as AsyncIterable<Uint8Array>) parts.push(p);
      expect(Buffer.concat(parts).equals(big)).toBe(true);
      // Written as the default user, readable by commands as that user.
      expect((await sbx.commands.run('stat -c %U /home/user/t/hello.txt')).stdout).toBe('user\n');
    });

    it('files: write many, list with depth, exists, getInfo, makeDir, rename, remove', async () => {
      const infos = await sbx.files.write([
        { path: '/home/user/m/a.txt', data: 'A' },
        { path: '/home/user/m/sub/b.txt', data: 'BB' },
      ]);
      expect(infos.map((i) => i.path).sort()).toEqual([
        '/home/user/m/a.txt',
        '/home/user/m/sub/b.txt',
      ]);
      expect((await sbx.files.list('/home/user/m')).map((e) => e.name).sort()).toEqual([
        'a.txt',
        'sub',
      ]);
      expect(
        (await sbx.files.list('/home/user/m', { depth: 2 })).map((e) => e.path).sort(),
      ).toEqual(['/home/user/m/a.txt', '/home/user/m/sub', '/home/user/m/sub/b.txt']);
      expect(await sbx.files.exists('/home/user/m/a.txt')).toBe(true);
      expect(await sbx.files.exists('/home/user/m/nope')).toBe(false);
      const fi = await sbx.files.getInfo('/home/user/m/sub/b.txt');
      expect(fi).toMatchObject({ name: 'b.txt', type: FileType.FILE, size: 2, owner: 'user' });
      expect(await sbx.files.makeDir('/home/user/m/new')).toBe(true);
      expect(await sbx.files.makeDir('/home/user/m/new')).toBe(false);
      expect((await sbx.files.getInfo('/home/user/m/new')).type).toBe(FileType.DIR);
      await sbx.files.rename('/home/user/m/a.txt', '/home/user/m/new/a2.txt');
      expect(await sbx.files.exists('/home/user/m/a.txt')).toBe(false);
      expect(await sbx.files.read('/home/user/m/new/a2.txt')).toBe('A');
      await sbx.files.remove('/home/user/m/sub');
      expect(await sbx.files.exists('/home/user/m/sub/b.txt')).toBe(false);
      await expect(sbx.files.read('/home/user/m/sub/b.txt')).rejects.toBeInstanceOf(
        sdk.FileNotFoundError,
      );
    });

    it('watchDir recursive reports create, write and remove in subdirectories', async () => {
      await sbx.files.makeDir('/home/user/w/deep/er');
      const events: string[] = [];
      const handle = await sbx.files.watchDir(
        '/home/user/w',
        (e) => void events.push(`${e.type}:${e.name}`),
        { recursive: true },
      );
      await sbx.files.write('/home/user/w/deep/er/f.txt', 'one');
      await eventually(
        () => events.includes(`${FilesystemEventType.CREATE}:deep/er/f.txt`),
        `create event (got ${events.join(' ')})`,
      );
      await sbx.commands.run('echo two >> /home/user/w/deep/er/f.txt');
      await eventually(
        () => events.includes(`${FilesystemEventType.WRITE}:deep/er/f.txt`),
        `write event (got ${events.join(' ')})`,
      );
      await sbx.files.remove('/home/user/w/deep/er/f.txt');
      await eventually(
        () => events.includes(`${FilesystemEventType.REMOVE}:deep/er/f.txt`),
        `remove event (got ${events.join(' ')})`,
      );
      await handle.stop();
    });

    it('signed upload and download URLs work without the access token, and a forged signature is refused', async () => {
      const up = new URL(await sbx.uploadUrl('/home/user/signed/up.txt'));
      expect(up.searchParams.get('signature')).toMatch(/^v1_/);
      // The SDK builds these URLs on E2B_SANDBOX_URL with no sandbox header: the gateway
      // finds the sandbox whose token signed them. Used exactly as the SDK returns them.
      const headers = {};
      const form = new FormData();
      form.append('file', new Blob(['signed upload\n']), 'up.txt');
      const put = await fetch(up, { method: 'POST', headers, body: form });
      expect(put.status).toBe(200);
      expect(await sbx.files.read('/home/user/signed/up.txt')).toBe('signed upload\n');
      const down = await fetch(await sbx.downloadUrl('/home/user/signed/up.txt'), { headers });
      expect(down.status).toBe(200);
      expect(await down.text()).toBe('signed upload\n');
      const forged = new URL(await sbx.downloadUrl('/home/user/signed/up.txt'));
      forged.searchParams.set('path', '/etc/shadow');
      const refused = await fetch(forged, { headers });
      expect(refused.status).toBeGreaterThanOrEqual(400);
      expect(refused.status).toBeLessThan(500);
      await refused.body?.cancel();
      const expiring = new URL(
        await sbx.downloadUrl('/home/user/signed/up.txt', { useSignatureExpiration: 600 }),
      );
      expect(Number(expiring.searchParams.get('signature_expiration'))).toBeGreaterThan(
        Date.now() / 1000,
      );
      expect((await fetch(expiring, { headers })).status).toBe(200);
    });

    it('getHost(port) names <port>-<id>.<domain>; Host (HTTP and TLS) and header routing reach a server in the sandbox', async () => {
      await sbx.files.write('/home/user/www/index.html', `served by ${sbx.sandboxId}\n`);
      const server = await sbx.commands.run('python3 -m http.server 8000 --bind 0.0.0.0', {
        background: true,
        cwd: '/home/user/www',
      });
      const host = sbx.getHost(8000);
      expect(host).toBe(`8000-${sbx.sandboxId}.${SANDBOX_DOMAIN}`);
      const byHost = await eventually(async () => {
        const r = await getWithHost(w.url, host, '/index.html');
        return r.status === 200 ? r : undefined;
      }, 'the sandbox web server answers through the Host route');
      expect(byHost.body).toBe(`served by ${sbx.sandboxId}\n`);
      const overTls = await getWithHost(
        `https://127.0.0.1:${tls.port}`,
        host,
        '/index.html',
        tls.certPem,
      );
      expect(overTls).toEqual({ status: 200, body: `served by ${sbx.sandboxId}\n` });
      const byHeader = await fetch(`${w.url}/index.html`, {
        headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '8000' },
      });
      expect(await byHeader.text()).toBe(`served by ${sbx.sandboxId}\n`);
      await server.kill();
    });

    it('getMetrics returns CPU, memory and disk samples', async () => {
      const points = await eventually(async () => {
        const m = await sbx.getMetrics();
        return m.length > 0 ? m : undefined;
      }, 'a metrics sample');
      const p = points[points.length - 1]!;
      expect(p.timestamp).toBeInstanceOf(Date);
      expect(p.cpuCount).toBeGreaterThanOrEqual(1);
      expect(p.memTotal).toBeGreaterThan(100 << 20);
      expect(p.memUsed).toBeGreaterThan(0);
      expect(p.memUsed).toBeLessThanOrEqual(p.memTotal);
      expect(p.diskTotal).toBeGreaterThan(0);
    });

    it('list filters by metadata and state and pages with limit/nextToken', async () => {
      other = await Sandbox.create('base', { metadata, timeoutMs: 600_000 });
      const pager = Sandbox.list({ query: { metadata }, limit: 1 });
      const first = await pager.nextItems();
      expect(first).toHaveLength(1);
      expect(pager.hasNext).toBe(true);
      const second = await pager.nextItems();
      expect(second).toHaveLength(1);
      if (pager.hasNext) expect(await pager.nextItems()).toHaveLength(0);
      expect([...first, ...second].map((s) => s.sandboxId).sort()).toEqual(
        [sbx.sandboxId, other.sandboxId].sort(),
      );
      expect(first[0]).toMatchObject({ templateId: 'base', metadata, state: 'running' });
      const none = await Sandbox.list({
        query: { metadata: { ...metadata, run: 'no-such-run' } },
      }).nextItems();
      expect(none).toEqual([]);
    });

    it('pause → isRunning false → connect resumes with files and a background process intact', async () => {
      await other.files.write('/home/user/keep.txt', 'kept across pause\n');
      const bg = await other.commands.run(
        'i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.2; done',
        { background: true },
      );
      await eventually(
        async () => (await other.files.read('/tmp/counter')).trim() !== '',
        'the background loop writes',
      );
      expect(await other.pause()).toBe(true);
      expect(await other.pause()).toBe(false);
      expect(await other.isRunning()).toBe(false);
      const paused = await Sandbox.list({ query: { metadata, state: ['paused'] } }).nextItems();
      expect(paused.map((s) => s.sandboxId)).toEqual([other.sandboxId]);
      const running = await Sandbox.list({ query: { metadata, state: ['running'] } }).nextItems();
      expect(running.map((s) => s.sandboxId)).toEqual([sbx.sandboxId]);

      const resumed = await Sandbox.connect(other.sandboxId);
      expect(await resumed.isRunning()).toBe(true);
      expect((await resumed.getInfo()).state).toBe('running');
      expect(await resumed.files.read('/home/user/keep.txt')).toBe('kept across pause\n');
      expect((await resumed.commands.list()).map((p) => p.pid)).toContain(bg.pid);
      const before = Number((await resumed.files.read('/tmp/counter')).trim());
      await eventually(
        async () => Number((await resumed.files.read('/tmp/counter')).trim()) > before,
        'the background loop keeps counting after resume',
      );
      // The old handle works again too: same id, same access token.
      expect((await other.commands.run('cat /home/user/keep.txt')).stdout).toBe(
        'kept across pause\n',
      );
    });

    it('kill: true once, then false; the sandbox is gone', async () => {
      const id = sbx.sandboxId;
      expect(await sbx.kill()).toBe(true);
      expect(await Sandbox.kill(id)).toBe(false);
      expect(await sbx.isRunning()).toBe(false);
      await expect(Sandbox.getInfo(id)).rejects.toBeInstanceOf(SandboxNotFoundError);
      await expect(Sandbox.connect(id)).rejects.toBeInstanceOf(SandboxNotFoundError);
      const listed = await Sandbox.list({ query: { metadata } }).nextItems();
      expect(listed.map((s) => s.sandboxId)).not.toContain(id);
    });

    it('lifecycle onTimeout pause + autoResume: the timeout pauses it, traffic resumes it', async () => {
      // `other` is done with: the host (2 vCPUs in CI) needs the room.
      await other.kill();
      const lc = await Sandbox.create('base', {
        metadata,
        timeoutMs: 3_000,
        lifecycle: { onTimeout: 'pause', autoResume: true },
      });
      try {
        await lc.files.write('/home/user/lc.txt', 'before the timeout\n');
        expect((await lc.getInfo()).lifecycle).toEqual({ onTimeout: 'pause', autoResume: true });
        await eventually(
          async () => (await Sandbox.getInfo(lc.sandboxId)).state === 'paused',
          'the timeout pauses the sandbox',
        );
        // A timeout set while paused applies from the next resume: without it the resumed
        // sandbox would be paused again 3 s after its VM starts, racing the command below.
        await lc.setTimeout(600_000);
        // Plain SDK traffic through the gateway resumes it.
        expect((await lc.commands.run('cat /home/user/lc.txt')).stdout).toBe(
          'before the timeout\n',
        );
        expect((await lc.getInfo()).state).toBe('running');
      } finally {
        await lc.kill();
      }
      await expect(Sandbox.getInfo(lc.sandboxId)).rejects.toBeInstanceOf(SandboxNotFoundError);
    });
  });
}
