import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { Code, ConnectError } from '@connectrpc/connect';
import { layout } from '@wrenn/common';
import { agentv1 } from '@wrenn/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AgentProcess,
  envdVia,
  processesUnder,
  spawnAgent,
} from '../support/agent-process.ts';
import { disposeWrennDir, freshWrennDir, sha256, until } from '../support/vm-dir.ts';

let dir: string;
let agent: AgentProcess | undefined;

beforeAll(async () => {
  dir = await freshWrennDir();
});
afterAll(async () => {
  await agent?.stop();
  await disposeWrennDir(dir);
});

async function codeOf(p: Promise<unknown>): Promise<Code | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (e) {
    return ConnectError.from(e).code;
  }
}

const COUNTER = 'i=0; while :; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.2; done';

async function counter(e: ReturnType<typeof envdVia>): Promise<number> {
  return Number((await e.readFile('/tmp/counter')).toString().trim());
}

describe('real VMs across agent process restarts (TCG)', () => {
  it('bad input over RPC gets the right code and leaves nothing behind', async () => {
    agent = await spawnAgent(dir);
    const c = agent.client;
    expect(await codeOf(c.pause({ sandboxId: 'nosuch' }))).toBe(Code.NotFound);
    expect(
      await codeOf(
        c.create({ sandboxId: 'toobig', teamId: 't1', templateId: 'minimal', vcpus: 64 }),
      ),
    ).toBe(Code.InvalidArgument);
    expect(
      await codeOf(
        c.create({
          sandboxId: 'toobig',
          teamId: 't1',
          templateId: 'minimal',
          memoryMb: 99_999_999,
        }),
      ),
    ).toBe(Code.InvalidArgument);
    expect(
      await codeOf(c.create({ sandboxId: 'notpl', teamId: 't1', templateId: 'no-such-template' })),
    ).toBe(Code.NotFound);
    expect((await c.list({})).sandboxes).toEqual([]);
    expect(await readdir(layout(dir).sandboxes)).toEqual([]);
  });

  it('a paused sandbox survives an agent restart with its file and its running process; a running one is re-adopted', async () => {
    agent ??= await spawnAgent(dir);
    await agent.client.create({ sandboxId: 'keep', teamId: 't1', templateId: 'minimal' });
    await agent.client.create({ sandboxId: 'runner', teamId: 't1', templateId: 'minimal' });
    let keep = envdVia(agent.url, 'keep');
    const data = randomBytes(512 * 1024);
    await keep.writeFile('/root/data.bin', data);
    const pid = await keep.startBackground('/bin/sh', ['-c', COUNTER]);
    expect(pid).toBeGreaterThan(1);
    const before = await until('the counter to reach 3', async () =>
      (await counter(keep)) >= 3 ? counter(keep) : undefined,
    );
    const paused = await agent.client.pause({ sandboxId: 'keep' });
    expect(paused.sandbox?.status).toBe(agentv1.SandboxStatus.PAUSED);
    const slot = paused.sandbox?.slot;

    // Restart the agent *process*: SIGTERM leaves VMs running; a new process takes over.
    await agent.stop();
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    agent = await spawnAgent(dir);
    keep = envdVia(agent.url, 'keep');
    const listed = await agent.client.list({});
    const byId = Object.fromEntries(listed.sandboxes.map((s) => [s.sandboxId, s]));
    expect(byId.keep?.status).toBe(agentv1.SandboxStatus.PAUSED);
    expect(byId.runner?.status).toBe(agentv1.SandboxStatus.RUNNING);

    // The re-adopted sandbox still runs commands, through the new agent's proxy.
    const echo = await envdVia(agent.url, 'runner').run('/bin/sh', ['-c', 'echo still-$((40+2))']);
    expect(echo).toMatchObject({ stdout: 'still-42\n', exitCode: 0 });

    for (let round = 1; round <= 2; round++) {
      const resumed = await agent.client.resume({ sandboxId: 'keep' });
      expect(resumed.sandbox?.status).toBe(agentv1.SandboxStatus.RUNNING);
      expect(resumed.sandbox?.slot).toBe(slot);
      expect(sha256(await keep.readFile('/root/data.bin'))).toBe(sha256(data));
      // Same process, same memory: the counter continues from where it was, never restarts.
      const after = await counter(keep);
      expect(after).toBeGreaterThanOrEqual(before);
      const alive = await keep.run('/bin/sh', ['-c', `kill -0 ${pid} && echo alive`]);
      expect(alive.stdout).toBe('alive\n');
      await until('the counter to move on', async () =>
        (await counter(keep)) > after ? true : undefined,
      );
      if (round === 1) {
        const again = await agent.client.pause({ sandboxId: 'keep' });
        expect(again.sandbox?.status).toBe(agentv1.SandboxStatus.PAUSED);
      }
    }

    await agent.client.destroy({ sandboxId: 'keep' });
    await agent.client.destroy({ sandboxId: 'runner' });
    expect((await agent.client.list({})).sandboxes).toEqual([]);
    expect(await processesUnder(dir)).toEqual([]);
    expect(await readdir(layout(dir).sandboxes)).toEqual([]);
  });
});
