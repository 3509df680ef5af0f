import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, statfs, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Code, ConnectError } from '@connectrpc/connect';
import { layout } from '@wrenn/common';
import { agentv1 } from '@wrenn/proto';
import { afterEach, describe, expect, it } from 'vitest';
import { OVERLAY, PAUSE_META } from '../../src/store.ts';
import {
  type AgentProcess,
  envdVia,
  processesUnder,
  spawnAgent,
} from '../support/agent-process.ts';
import { dirDigest, disposeWrennDir, freshWrennDir, sha256 } from '../support/vm-dir.ts';

const execFileP = promisify(execFile);
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function agentOn(dir: string): Promise<AgentProcess> {
  const a = await spawnAgent(dir);
  cleanups.push(() => a.stop());
  return a;
}

describe('corrupt files and a full disk (real VMs)', () => {
  it('truncated state, garbage meta and a missing overlay are quarantined at startup; the good one is untouched', async () => {
    const dir = await freshWrennDir();
    cleanups.push(() => disposeWrennDir(dir));
    let agent = await agentOn(dir);
    const ids = ['trunc', 'garbage', 'noover', 'good'];
    const data = new Map<string, Buffer>();
    for (const id of ids) {
      await agent.client.create({ sandboxId: id, teamId: 't1', templateId: 'minimal' });
      const d = randomBytes(32 * 1024);
      data.set(id, d);
      await envdVia(agent.url, id).writeFile('/root/d.bin', d);
      await agent.client.pause({ sandboxId: id });
    }
    await agent.stop();
    const sbx = layout(dir).sandboxes;
    const goodDigest = await dirDigest(join(sbx, 'good'));
    await truncate(join(sbx, 'trunc', 'vmstate'), 4096);
    await writeFile(join(sbx, 'garbage', PAUSE_META), randomBytes(300));
    await unlink(join(sbx, 'noover', OVERLAY));

    agent = await agentOn(dir);
    const list = (await agent.client.list({})).sandboxes;
    expect(list.map((s) => [s.sandboxId, s.status])).toEqual([
      ['good', agentv1.SandboxStatus.PAUSED],
    ]);
    const names = await readdir(sbx);
    for (const bad of ['trunc', 'garbage', 'noover']) {
      expect(names).not.toContain(bad);
      expect(
        names.some((n) => n.startsWith(`${bad}.trash-`)),
        `${bad} quarantined`,
      ).toBe(true);
    }
    expect(await dirDigest(join(sbx, 'good'))).toEqual(goodDigest);
    expect(agent.output()).toMatch(
      /restore: trashing trunc: unreadable snapshot meta: vmstate is 4096 bytes/,
    );
    expect(agent.output()).toMatch(
      /restore: trashing noover: unreadable snapshot meta: rootfs\.qcow2 is missing/,
    );

    await agent.client.resume({ sandboxId: 'good' });
    expect(sha256(await envdVia(agent.url, 'good').readFile('/root/d.bin'))).toBe(
      sha256(data.get('good')!),
    );
    await agent.client.destroy({ sandboxId: 'good' });

    // The next start sweeps the quarantined dirs.
    await agent.stop();
    agent = await agentOn(dir);
    expect(await readdir(sbx)).toEqual([]);
    expect(await processesUnder(dir)).toEqual([]);
  });

  it('a full disk during pause rolls back to running with a clear error; the other paused sandbox is untouched', async () => {
    const mnt = await mkdtemp('/tmp/wfull-');
    await execFileP('mount', ['-t', 'tmpfs', '-o', 'size=700M', 'tmpfs', mnt]);
    cleanups.push(async () => {
      await execFileP('umount', ['-l', mnt]);
      await rm(mnt, { recursive: true, force: true });
    });
    const dir = await freshWrennDir(undefined, mnt);
    cleanups.push(() => disposeWrennDir(dir));
    const agent = await agentOn(dir);
    const dA = randomBytes(32 * 1024);
    const dB = randomBytes(32 * 1024);
    await agent.client.create({ sandboxId: 'a', teamId: 't1', templateId: 'minimal' });
    await agent.client.create({ sandboxId: 'b', teamId: 't1', templateId: 'minimal' });
    await envdVia(agent.url, 'a').writeFile('/root/d.bin', dA);
    await envdVia(agent.url, 'b').writeFile('/root/d.bin', dB);
    await agent.client.pause({ sandboxId: 'a' });
    const aDigest = await dirDigest(layout(dir).sandbox('a'));

    // Leave 8 MiB free: far less than a pause snapshot.
    const st = await statfs(mnt);
    const filler = join(mnt, 'filler');
    await execFileP('fallocate', ['-l', String(st.bavail * st.bsize - 8 * 1024 * 1024), filler]);
    const err = await agent.client.pause({ sandboxId: 'b' }).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code, err?.rawMessage).toBe(Code.ResourceExhausted);
    expect(err?.rawMessage).toMatch(/no space left on device; the sandbox keeps running/);

    const list = (await agent.client.list({})).sandboxes;
    expect(Object.fromEntries(list.map((s) => [s.sandboxId, s.status]))).toEqual({
      a: agentv1.SandboxStatus.PAUSED,
      b: agentv1.SandboxStatus.RUNNING,
    });
    expect((await readdir(layout(dir).sandboxes)).sort()).toEqual(['a', 'b']); // no staging left
    expect(await dirDigest(layout(dir).sandbox('a'))).toEqual(aDigest);
    const echo = await envdVia(agent.url, 'b').run('/bin/sh', ['-c', 'echo running']);
    expect(echo.stdout).toBe('running\n');

    // With room again, the same sandbox pauses, and both resume with their data.
    await rm(filler);
    await agent.client.pause({ sandboxId: 'b' });
    for (const [id, d] of [
      ['a', dA],
      ['b', dB],
    ] as const) {
      await agent.client.resume({ sandboxId: id });
      expect(sha256(await envdVia(agent.url, id).readFile('/root/d.bin'))).toBe(sha256(d));
      await agent.client.destroy({ sandboxId: id });
    }
  });
});
