import { Code, ConnectError } from '@connectrpc/connect';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AgentProcess,
  envdVia,
  processesUnder,
  spawnAgent,
} from '../support/agent-process.ts';
import { disposeWrennDir, freshWrennDir } from '../support/vm-dir.ts';

let dir: string;
let agent: AgentProcess;
beforeAll(async () => {
  dir = await freshWrennDir();
  agent = await spawnAgent(dir);
});
afterAll(async () => {
  await agent?.stop();
  await disposeWrennDir(dir);
});

async function codeOf(p: Promise<unknown>): Promise<Code | 'ok'> {
  return p.then(
    () => 'ok' as const,
    (e: unknown) => ConnectError.from(e).code,
  );
}

describe('templates from a running sandbox (real VMs)', () => {
  it('CreateTemplateSnapshot keeps the source running; a new sandbox from it starts with its files; in use → cannot delete', async () => {
    const c = agent.client;
    await c.create({
      sandboxId: 'src',
      teamId: 'team9',
      templateId: 'minimal',
      envdAccessToken: 'src-token',
    });
    const src = envdVia(agent.url, 'src', 'src-token');
    await src.writeFile('/root/baked.txt', 'baked into the template');
    await src.run('/bin/sh', ['-c', 'sync']);

    const made = await c.createTemplateSnapshot({
      sandboxId: 'src',
      teamId: 'team9',
      templateId: 'baked',
    });
    expect(made.template).toMatchObject({
      teamId: 'team9',
      templateId: 'baked',
      hasSnapshot: true,
    });
    expect(
      await codeOf(
        c.createTemplateSnapshot({ sandboxId: 'src', teamId: 'team9', templateId: 'baked' }),
      ),
    ).toBe(Code.AlreadyExists);
    // The source keeps running.
    expect((await src.run('/bin/sh', ['-c', 'echo still-here'])).stdout).toBe('still-here\n');

    await c.create({ sandboxId: 'child', teamId: 'team9', templateId: 'baked' });
    const child = envdVia(agent.url, 'child');
    expect((await child.readFile('/root/baked.txt')).toString()).toBe('baked into the template');
    expect((await child.run('/bin/sh', ['-c', 'echo child-ok'])).stdout).toBe('child-ok\n');

    const tpls = (await c.listTemplates({})).templates.map((t) => `${t.teamId}/${t.templateId}`);
    expect(tpls).toContain('team9/baked');
    expect(await codeOf(c.deleteTemplate({ teamId: 'team9', templateId: 'baked' }))).toBe(
      Code.FailedPrecondition,
    );
    await c.destroy({ sandboxId: 'child' });
    await c.deleteTemplate({ teamId: 'team9', templateId: 'baked' });
    expect(
      (await c.listTemplates({})).templates.map((t) => `${t.teamId}/${t.templateId}`),
    ).not.toContain('team9/baked');
    expect(
      await codeOf(c.create({ sandboxId: 'gone', teamId: 'team9', templateId: 'baked' })),
    ).toBe(Code.NotFound);

    await c.destroy({ sandboxId: 'src' });
    expect((await c.list({})).sandboxes.map((s) => s.status)).toEqual([]);
    expect(await processesUnder(dir)).toEqual([]);
  });
});
