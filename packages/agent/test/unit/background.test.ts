import { spawn } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent } from '../../src/agent.ts';
import { createSandbox } from '../../src/lifecycle/create.ts';
import { MetricsSampler, Ring } from '../../src/metrics.ts';
import { AGENT_JSON } from '../../src/registration.ts';
import { shutdownSandboxes } from '../../src/shutdown.ts';
import { FakeDriver } from '../support/fake-driver.ts';
import {
  fabricateWrennDir,
  newManager,
  nextPortBase,
  removeWrennDir,
  silentLog,
} from '../support/fixtures.ts';

const dirs: string[] = [];
afterEach(async () => {
  await FakeDriver.killAll();
  for (const d of dirs.splice(0)) await removeWrennDir(d);
});
async function wrennDir() {
  const d = await fabricateWrennDir();
  dirs.push(d);
  return d;
}

describe('metrics', () => {
  it('the ring buffer keeps the newest points in order', () => {
    const r = new Ring<number>(3);
    for (let i = 1; i <= 5; i++) r.push(i);
    expect(r.toArray()).toEqual([3, 4, 5]);
    expect(r.size).toBe(3);
  });

  it('samples CPU and memory of the VMM process of each running sandbox', async () => {
    const dir = await wrennDir();
    const driver = new FakeDriver();
    const m = newManager(dir, driver);
    const sb = await createSandbox(m, { sandboxId: 'met1', teamId: 't', templateId: 'minimal' });
    // Stand in a real busy process for the VMM process (the fake VM has no pid of its own).
    const busy = spawn(
      process.execPath,
      ['-e', 'const a=[];for(;;){a.push(Math.random());if(a.length>1e5)a.length=0}'],
      { stdio: 'ignore' },
    );
    try {
      sb.vm = { ...sb.vm!, pid: busy.pid! };
      const sampler = new MetricsSampler(m, 1000, 10);
      const t0 = Date.now();
      await sampler.sample(t0);
      // Wait for the busy process to burn CPU ticks (a condition, not a duration).
      const ticks = async () => {
        const st = await readFile(`/proc/${busy.pid}/stat`, 'utf8');
        const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
        return Number(f[11]) + Number(f[12]);
      };
      const start = await ticks();
      while ((await ticks()) < start + 3) await new Promise((r) => setTimeout(r, 20));
      await sampler.sample(t0 + 300);
      const pts = sampler.points('met1');
      expect(pts).toHaveLength(2);
      expect(pts[1]!.cpuUsedPct).toBeGreaterThan(0);
      expect(pts[1]!.memUsedBytes).toBeGreaterThan(10 * 1024 * 1024);
      expect(pts[1]!.memTotalBytes).toBe(512 * 1024 * 1024);
      expect(pts[1]!.cpuCount).toBe(1);
      expect(sampler.points('met1', t0 + 1)).toHaveLength(1);
    } finally {
      busy.kill('SIGKILL');
    }
  });
});

describe('shutdown', () => {
  it('by default leaves VMs running; with pause-on-shutdown pauses every running sandbox and refuses new work', async () => {
    const dir = await wrennDir();
    const driver = new FakeDriver();
    const m = newManager(dir, driver);
    await createSandbox(m, { sandboxId: 'sd1', teamId: 't', templateId: 'minimal' });
    await createSandbox(m, { sandboxId: 'sd2', teamId: 't', templateId: 'minimal' });
    expect(await shutdownSandboxes(m, false)).toEqual({ paused: [], failed: [] });
    expect(m.get('sd1').status).toBe('running');
    expect(FakeDriver.alive()).toHaveLength(2);

    const out = await shutdownSandboxes(m, true);
    expect(out.paused.sort()).toEqual(['sd1', 'sd2']);
    expect(m.get('sd1').status).toBe('paused');
    expect(FakeDriver.alive()).toHaveLength(0);
    await expect(
      createSandbox(m, { sandboxId: 'sd3', teamId: 't', templateId: 'minimal' }),
    ).rejects.toMatchObject({ code: 'unavailable' });
  });
});

describe('registration and heartbeats', () => {
  it('registers once with the token, stores agent.json 0600, heartbeats with the host token, and reuses it after a restart', async () => {
    const dir = await wrennDir();
    const seen: {
      path: string;
      headers: IncomingMessage['headers'];
      body: Record<string, unknown>;
    }[] = [];
    const cp = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        seen.push({ path: req.url!, headers: req.headers, body: JSON.parse(body || '{}') });
        if (req.url === '/v1/hosts/register')
          res
            .writeHead(201, { 'content-type': 'application/json' })
            .end(JSON.stringify({ hostId: 'host-1', hostToken: 'issued-token' }));
        else res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => cp.listen(0, '127.0.0.1', () => r()));
    const cpUrl = `http://127.0.0.1:${(cp.address() as AddressInfo).port}`;
    try {
      const a = await startAgent({
        dir,
        hostToken: 'provisional',
        driver: new FakeDriver(),
        portBase: nextPortBase(),
        log: silentLog,
        controlPlaneUrl: cpUrl,
        registrationToken: 'one-time',
        heartbeatMs: 50,
      });
      const reg = seen.find((s) => s.path === '/v1/hosts/register')!;
      expect(reg.body).toMatchObject({ registrationToken: 'one-time', agentUrl: a.url });
      expect(reg.body.capacity).toMatchObject({
        vcpus: expect.any(Number),
        memoryMb: expect.any(Number),
        diskMb: expect.any(Number),
      });
      const saved = JSON.parse(await readFile(join(dir, AGENT_JSON), 'utf8'));
      expect(saved).toEqual({
        controlPlaneUrl: cpUrl,
        hostId: 'host-1',
        hostToken: 'issued-token',
      });
      expect((await stat(join(dir, AGENT_JSON))).mode & 0o777).toBe(0o600);
      for (let i = 0; i < 100 && !seen.some((s) => s.path === '/v1/hosts/host-1/heartbeat'); i++)
        await new Promise((r) => setTimeout(r, 20));
      const hb = seen.find((s) => s.path === '/v1/hosts/host-1/heartbeat')!;
      expect(hb.headers['x-wrenn-host-token']).toBe('issued-token');
      expect(hb.body).toMatchObject({
        load: { sandboxesRunning: 0, sandboxesPaused: 0 },
        accelerator: 'none',
      });
      // The issued token is the one requests must now carry.
      const res = await fetch(`${a.url}/proxy/x/49983/`, {
        headers: { 'x-wrenn-host-token': 'provisional' },
      });
      expect(res.status).toBe(401);
      await a.close();

      const before = seen.filter((s) => s.path === '/v1/hosts/register').length;
      const b = await startAgent({
        dir,
        hostToken: 'provisional2',
        driver: new FakeDriver(),
        portBase: nextPortBase(),
        log: silentLog,
        controlPlaneUrl: cpUrl,
        heartbeatMs: 50,
      });
      expect(seen.filter((s) => s.path === '/v1/hosts/register').length).toBe(before);
      await b.close();
    } finally {
      cp.close();
    }
  });
});
