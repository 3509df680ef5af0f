import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { layout, WrennError } from '@wrenn/common';
import { afterEach, describe, expect, it } from 'vitest';
import { createSandbox } from '../../src/lifecycle/create.ts';
import { destroySandbox } from '../../src/lifecycle/destroy.ts';
import { pauseSandbox } from '../../src/lifecycle/pause.ts';
import { resumeSandbox } from '../../src/lifecycle/resume.ts';
import { deleteTemplate } from '../../src/lifecycle/template-snapshot.ts';
import { setSandboxTimeout } from '../../src/lifecycle/timeout.ts';
import { Reaper } from '../../src/reaper.ts';
import { recover } from '../../src/startup/index.ts';
import { OVERLAY, PAUSE_META, RUNNING_STATE, readPauseMeta } from '../../src/store.ts';
import { FakeDriver } from '../support/fake-driver.ts';
import { fabricateWrennDir, newManager, removeWrennDir } from '../support/fixtures.ts';

const dirs: string[] = [];
afterEach(async () => {
  await FakeDriver.killAll();
  for (const d of dirs.splice(0)) await removeWrennDir(d);
});

async function setup() {
  const dir = await fabricateWrennDir();
  dirs.push(dir);
  const driver = new FakeDriver();
  const m = newManager(dir, driver);
  return { dir, driver, m };
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );
const ls = async (dir: string) => (await readdir(layout(dir).sandboxes)).sort();
const tick = async (port: number) =>
  ((await (await fetch(`http://127.0.0.1:${port}/tick`)).json()) as { counter: number }).counter;

describe('create', () => {
  it('creates a running sandbox: slot, base reference, overlay backed by the base, running state, envd /init', async () => {
    const { dir, driver, m } = await setup();
    const sb = await createSandbox(m, {
      sandboxId: 'sb1',
      teamId: 'team1',
      templateId: 'minimal',
      envVars: { A: '1' },
      envdAccessToken: 'tok',
      timeoutSeconds: 60,
    });
    expect(sb.status).toBe('running');
    expect(m.slots.isHeld(sb.slot)).toBe(true);
    expect(m.baseRefs.count(sb.baseImage!)).toBe(1);
    const live = layout(dir).sandbox('sb1');
    expect((await readdir(live)).sort()).toEqual([OVERLAY, RUNNING_STATE]);
    const state = JSON.parse(await readFile(join(live, RUNNING_STATE), 'utf8'));
    expect(state.phase).toBe('running');
    expect(state.vm.pid).toBe(sb.vm!.pid);
    const vm = driver.vm(sb.vm!.pid)!;
    expect(vm.ram.inits).toHaveLength(1);
    expect(vm.ram.inits[0]).toMatchObject({ envVars: { A: '1' }, accessToken: 'tok' });
    expect(sb.endAt).toBeGreaterThan(Date.now());
  });

  it('a missing template is not_found and leaves nothing behind', async () => {
    const { dir, m } = await setup();
    await expect(
      createSandbox(m, { sandboxId: 'sb2', teamId: 't', templateId: 'nope' }),
    ).rejects.toMatchObject({ code: 'not_found' });
    expect(m.boxes.size).toBe(0);
    expect(m.slots.used).toBe(0);
    expect(await ls(dir)).toEqual([]);
  });

  it('out-of-range resources are invalid_argument', async () => {
    const { m } = await setup();
    for (const bad of [
      { vcpus: 99 },
      { memoryMb: 1 },
      { memoryMb: 1_000_000 },
      { timeoutSeconds: -1 },
      { diskMb: 2 ** 31 },
    ]) {
      await expect(
        createSandbox(m, { sandboxId: 'sb3', teamId: 't', templateId: 'minimal', ...bad }),
      ).rejects.toMatchObject({ code: 'invalid_argument' });
    }
    await expect(
      createSandbox(m, { sandboxId: 'Bad_ID', teamId: 't', templateId: 'minimal' }),
    ).rejects.toMatchObject({ code: 'invalid_argument' });
    expect(m.boxes.size).toBe(0);
  });

  it('a VM start failure unwinds everything: no dir, no slot, no base reference', async () => {
    const { dir, driver, m } = await setup();
    driver.failNext.set('start', new Error('boom'));
    await expect(
      createSandbox(m, { sandboxId: 'sb4', teamId: 't', templateId: 'minimal' }),
    ).rejects.toThrow(/boom/);
    expect(m.boxes.size).toBe(0);
    expect(m.slots.used).toBe(0);
    expect(m.baseRefs.count(join(layout(dir).image('public', 'minimal'), 'rootfs.ext4'))).toBe(0);
    expect(await ls(dir)).toEqual([]);
  });

  it('a duplicate id is a conflict and the first sandbox is untouched', async () => {
    const { m } = await setup();
    await createSandbox(m, { sandboxId: 'dup', teamId: 't', templateId: 'minimal' });
    await expect(
      createSandbox(m, { sandboxId: 'dup', teamId: 't', templateId: 'minimal' }),
    ).rejects.toMatchObject({ code: 'conflict' });
    expect(m.get('dup').status).toBe('running');
  });
});

describe('pause and resume', () => {
  it('pause writes a complete snapshot, keeps only the slot; resume continues the same memory on the same slot, many times', async () => {
    const { dir, driver, m } = await setup();
    const sb = await createSandbox(m, {
      sandboxId: 'pr1',
      teamId: 't',
      templateId: 'minimal',
      timeoutSeconds: 100,
    });
    const port = m.slots.envdPort(sb.slot);
    const slot = sb.slot;
    const base = sb.baseImage!;
    expect(await tick(port)).toBe(1);

    for (let round = 1; round <= 3; round++) {
      await pauseSandbox(m, 'pr1');
      expect(sb.status).toBe('paused');
      expect(sb.vm).toBeUndefined();
      expect(sb.baseImage).toBeUndefined();
      expect(m.baseRefs.count(base)).toBe(0);
      expect(m.slots.isHeld(slot)).toBe(true);
      expect(await ls(dir)).toEqual(['pr1']); // no staging, no trash left
      const live = layout(dir).sandbox('pr1');
      expect((await readdir(live)).sort()).toEqual(
        [OVERLAY, 'memory', 'vmstate', PAUSE_META].sort(),
      );
      const meta = await readPauseMeta(live);
      expect(meta.slot_index).toBe(slot);
      expect(meta.remaining_ms).toBeGreaterThan(0);
      expect(meta.remaining_ms).toBeLessThanOrEqual(100_000);

      await resumeSandbox(m, 'pr1');
      expect(sb.status).toBe('running');
      expect(sb.slot).toBe(slot);
      expect(m.baseRefs.count(base)).toBe(1);
      expect((await readdir(live)).includes(PAUSE_META)).toBe(false);
      // The counter continues from where it was: the RAM came from the snapshot.
      expect(await tick(port)).toBe(round + 1);
      expect(driver.vm(sb.vm!.pid)!.ram.source).toBe('snapshot');
    }
  });

  it('pause of a paused sandbox is failed_precondition; resume of a running one too', async () => {
    const { m } = await setup();
    await createSandbox(m, { sandboxId: 'pp', teamId: 't', templateId: 'minimal' });
    await expect(resumeSandbox(m, 'pp')).rejects.toMatchObject({ code: 'failed_precondition' });
    await pauseSandbox(m, 'pp');
    await expect(pauseSandbox(m, 'pp')).rejects.toMatchObject({ code: 'failed_precondition' });
    await expect(pauseSandbox(m, 'unknown1')).rejects.toMatchObject({ code: 'not_found' });
  });

  it('an early pause failure (disk full writing the snapshot) rolls back to running and removes the staging dir', async () => {
    const { dir, driver, m } = await setup();
    const sb = await createSandbox(m, { sandboxId: 'full1', teamId: 't', templateId: 'minimal' });
    const port = m.slots.envdPort(sb.slot);
    await tick(port);
    driver.failNext.set(
      'snapshotToDir',
      Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }),
    );
    const err = await pauseSandbox(m, 'full1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WrennError);
    expect((err as WrennError).code).toBe('resource_exhausted');
    expect((err as WrennError).message).toMatch(/keeps running/);
    expect(sb.status).toBe('running');
    expect(await ls(dir)).toEqual(['full1']);
    expect((await readdir(layout(dir).sandbox('full1'))).sort()).toEqual([OVERLAY, RUNNING_STATE]);
    expect(await tick(port)).toBe(2); // vCPUs run again, memory intact
    // And a later pause works.
    await pauseSandbox(m, 'full1');
    expect(sb.status).toBe('paused');
  });

  it('a VMM refusing to stop the vCPUs rolls back to running', async () => {
    const { dir, driver, m } = await setup();
    driver.failNext.set('pause', new Error('QMP stop refused'));
    const sb = await createSandbox(m, { sandboxId: 'stop1', teamId: 't', templateId: 'minimal' });
    await expect(pauseSandbox(m, 'stop1')).rejects.toMatchObject({ code: 'internal' });
    expect(sb.status).toBe('running');
    expect(driver.calls.some((c) => c.op === 'snapshotToDir')).toBe(false);
    expect(await ls(dir)).toEqual(['stop1']);
  });

  it('a failure after the snapshot is durable (stopping the VM) still leaves a paused, resumable sandbox', async () => {
    const { driver, m } = await setup();
    const sb = await createSandbox(m, { sandboxId: 'late1', teamId: 't', templateId: 'minimal' });
    driver.failNext.set('kill', new Error('kill failed'));
    await pauseSandbox(m, 'late1');
    expect(sb.status).toBe('paused');
    expect(sb.baseImage).toBeUndefined();
  });

  it('a resume failure leaves the sandbox paused with its snapshot intact', async () => {
    const { dir, driver, m } = await setup();
    const sb = await createSandbox(m, { sandboxId: 'rf1', teamId: 't', templateId: 'minimal' });
    await pauseSandbox(m, 'rf1');
    const before = await readFile(join(layout(dir).sandbox('rf1'), PAUSE_META), 'utf8');
    driver.failNext.set('start', new Error('no memory'));
    await expect(resumeSandbox(m, 'rf1')).rejects.toThrow(/no memory/);
    expect(sb.status).toBe('paused');
    expect(m.baseRefs.count(join(layout(dir).image('public', 'minimal'), 'rootfs.ext4'))).toBe(0);
    expect(await readFile(join(layout(dir).sandbox('rf1'), PAUSE_META), 'utf8')).toBe(before);
    await resumeSandbox(m, 'rf1');
    expect(sb.status).toBe('running');
  });

  it('resume runs the guest only after its pause meta is gone (the commit point)', async () => {
    const { dir, driver, m } = await setup();
    await createSandbox(m, { sandboxId: 'rc1', teamId: 't', templateId: 'minimal' });
    await pauseSandbox(m, 'rc1');
    const meta = join(layout(dir).sandbox('rc1'), PAUSE_META);
    const seen: string[] = [];
    const start = driver.start.bind(driver);
    driver.start = async (...args) => {
      const ref = await start(...args);
      seen.push(`started ${driver.vm(ref.pid)!.state}`);
      return ref;
    };
    const resume = driver.resume.bind(driver);
    driver.resume = async (ref) => {
      seen.push(`run with meta ${await exists(meta)}`);
      return resume(ref);
    };
    await resumeSandbox(m, 'rc1');
    expect(seen).toEqual(['started paused', 'run with meta false']);
  });

  it('a failure after the commit marks the sandbox error and keeps its VM and data', async () => {
    const { dir, driver, m } = await setup();
    const sb = await createSandbox(m, { sandboxId: 'rl1', teamId: 't', templateId: 'minimal' });
    await pauseSandbox(m, 'rl1');
    driver.failNext.set('resume', new Error('vCPUs would not run'));
    await expect(resumeSandbox(m, 'rl1')).rejects.toMatchObject({
      code: 'internal',
      message: expect.stringMatching(/after leaving its snapshot: vCPUs would not run/),
    });
    expect(sb.status).toBe('error');
    expect(driver.vm(sb.vm!.pid)).toBeDefined();
    expect(await readdir(layout(dir).sandbox('rl1'))).toContain(OVERLAY);
    await destroySandbox(m, 'rl1');
    expect(m.slots.isHeld(sb.slot)).toBe(false);
  });

  it('pause drains in-flight requests and aborts the ones still open at the deadline', async () => {
    const { m } = await setup();
    const sb = await createSandbox(m, { sandboxId: 'drain1', teamId: 't', templateId: 'minimal' });
    let aborted = false;
    sb.conns.begin(() => {
      aborted = true;
    });
    const quick = sb.conns.begin(() => {
      throw new Error('must not be aborted');
    });
    setImmediate(quick);
    await pauseSandbox(m, 'drain1');
    expect(aborted).toBe(true);
    expect(sb.conns.inFlight).toBe(0);
  });
});

describe('destroy', () => {
  it('destroy of a running sandbox stops its VM and frees slot, base reference and dir', async () => {
    const { dir, driver, m } = await setup();
    const sb = await createSandbox(m, { sandboxId: 'd1', teamId: 't', templateId: 'minimal' });
    const base = sb.baseImage!;
    await destroySandbox(m, 'd1');
    expect(driver.calls.filter((c) => c.op === 'kill')).toHaveLength(1);
    expect(m.boxes.has('d1')).toBe(false);
    expect(m.slots.used).toBe(0);
    expect(m.baseRefs.count(base)).toBe(0);
    expect(await ls(dir)).toEqual([]);
    await expect(destroySandbox(m, 'd1')).rejects.toMatchObject({ code: 'not_found' });
  });

  it('a template in use cannot be deleted', async () => {
    const { m } = await setup();
    await createSandbox(m, { sandboxId: 'u1', teamId: 't', templateId: 'minimal' });
    await expect(deleteTemplate(m, 'public', 'minimal')).rejects.toMatchObject({
      code: 'failed_precondition',
    });
    await pauseSandbox(m, 'u1');
    // Paused: no base reference, but it needs the base to resume.
    await expect(deleteTemplate(m, 'public', 'minimal')).rejects.toMatchObject({
      code: 'failed_precondition',
    });
  });
});

describe('TTL reaper and timeouts', () => {
  it('kills a sandbox past its end, pauses one whose action is pause, and reports it once', async () => {
    const { m } = await setup();
    const k = await createSandbox(m, {
      sandboxId: 'ttlk',
      teamId: 't',
      templateId: 'minimal',
      timeoutSeconds: 10,
    });
    const p = await createSandbox(m, {
      sandboxId: 'ttlp',
      teamId: 't',
      templateId: 'minimal',
      timeoutSeconds: 10,
      timeoutAction: 'pause',
    });
    await createSandbox(m, { sandboxId: 'ttln', teamId: 't', templateId: 'minimal' }); // no timeout
    const reaper = new Reaper(m);
    expect(await reaper.tick(k.endAt - 1)).toEqual({ paused: [], killed: [] });
    const acted = await reaper.tick(Math.max(k.endAt, p.endAt));
    expect(acted.killed).toEqual(['ttlk']);
    expect(acted.paused).toEqual(['ttlp']);
    expect(m.boxes.has('ttlk')).toBe(false);
    expect(m.get('ttlp').status).toBe('paused');
    expect(m.get('ttln').status).toBe('running');
    expect(m.autoPaused).toEqual(['ttlp']);
  });

  it('paused time does not count: a resumed sandbox gets the time it had left', async () => {
    const { m } = await setup();
    const sb = await createSandbox(m, {
      sandboxId: 'left1',
      teamId: 't',
      templateId: 'minimal',
      timeoutSeconds: 100,
    });
    await pauseSandbox(m, 'left1');
    const remaining = sb.remainingMs;
    expect(remaining).toBeGreaterThan(90_000);
    const reaper = new Reaper(m);
    // Far in the future: a paused sandbox is never reaped.
    expect(await reaper.tick(Date.now() + 10 * 86_400_000)).toEqual({ paused: [], killed: [] });
    const before = Date.now();
    await resumeSandbox(m, 'left1');
    expect(sb.endAt - before).toBeGreaterThanOrEqual(remaining - 1);
    expect(sb.endAt - Date.now()).toBeLessThanOrEqual(remaining);
  });

  it("set-timeout extends a running sandbox and sets a paused one's remaining time; bad values are invalid_argument", async () => {
    const { m } = await setup();
    const sb = await createSandbox(m, {
      sandboxId: 'st1',
      teamId: 't',
      templateId: 'minimal',
      timeoutSeconds: 5,
    });
    await setSandboxTimeout(m, 'st1', 3600);
    expect(sb.endAt).toBeGreaterThan(Date.now() + 3_500_000);
    await pauseSandbox(m, 'st1');
    await setSandboxTimeout(m, 'st1', 20);
    expect(sb.remainingMs).toBe(20_000);
    await expect(setSandboxTimeout(m, 'st1', -5)).rejects.toMatchObject({
      code: 'invalid_argument',
    });
    await expect(setSandboxTimeout(m, 'nosuch', 5)).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('agent restart (fake VMs survive the manager)', () => {
  it('re-adopts running sandboxes, restores paused ones, and their VMs and snapshots are the same', async () => {
    const { dir, driver, m } = await setup();
    const r = await createSandbox(m, { sandboxId: 'keeprun', teamId: 't', templateId: 'minimal' });
    const p = await createSandbox(m, {
      sandboxId: 'keeppause',
      teamId: 't',
      templateId: 'minimal',
    });
    const rport = m.slots.envdPort(r.slot);
    await tick(rport);
    await tick(m.slots.envdPort(p.slot));
    await pauseSandbox(m, 'keeppause');

    const m2 = newManager(dir, driver);
    Object.defineProperty(m2.slots, 'portBase', { value: m.slots.portBase });
    const report = await recover(m2);
    expect(report.readopt.adopted).toEqual(['keeprun']);
    expect(report.restore.restored).toEqual(['keeppause']);
    expect(m2.get('keeprun').status).toBe('running');
    expect(m2.get('keeprun').vm!.pid).toBe(r.vm!.pid);
    expect(m2.baseRefs.count(r.baseImage!)).toBe(1);
    expect(await tick(rport)).toBe(2);
    await resumeSandbox(m2, 'keeppause');
    expect(await tick(m2.slots.envdPort(m2.get('keeppause').slot))).toBe(2);
  });

  it('a VM whose vCPUs an interrupted pause stopped runs again after re-adoption', async () => {
    const { dir, driver, m } = await setup();
    const sb = await createSandbox(m, {
      sandboxId: 'halfpause',
      teamId: 't',
      templateId: 'minimal',
    });
    await driver.pause(sb.vm!);
    const m2 = newManager(dir, driver);
    Object.defineProperty(m2.slots, 'portBase', { value: m.slots.portBase });
    await recover(m2);
    expect((await driver.query(sb.vm!)).state).toBe('running');
    expect(m2.get('halfpause').status).toBe('running');
  });

  it('a running sandbox whose VM died is swept with its dir', async () => {
    const { dir, driver, m } = await setup();
    const a = await createSandbox(m, { sandboxId: 'deadrun', teamId: 't', templateId: 'minimal' });
    await driver.kill(a.vm!);
    const m2 = newManager(dir, driver);
    const report = await recover(m2);
    expect(report.readopt.swept).toEqual(['deadrun']);
    expect(m2.boxes.size).toBe(0);
    expect(await stat(layout(dir).sandbox('deadrun')).catch(() => undefined)).toBeUndefined();
  });
});

describe('template from a sandbox', () => {
  it('writes a complete template and the source keeps running; a failure resumes the source and leaves no staging dir', async () => {
    const { dir, driver, m } = await setup();
    const { createTemplateFromSandbox } = await import('../../src/lifecycle/template-snapshot.ts');
    const sb = await createSandbox(m, {
      sandboxId: 'tsrc',
      teamId: 'team1',
      templateId: 'minimal',
    });
    const port = m.slots.envdPort(sb.slot);
    await tick(port);

    driver.failNext.set('snapshotToDir', new Error('disk on fire'));
    await expect(createTemplateFromSandbox(m, 'tsrc', 'team1', 'mine')).rejects.toThrow(
      /disk on fire/,
    );
    expect(sb.status).toBe('running');
    expect(await tick(port)).toBe(2); // vCPUs run again
    expect(await readdir(join(layout(dir).images, 'team1')).catch(() => [])).toEqual([]);

    const t = await createTemplateFromSandbox(m, 'tsrc', 'team1', 'mine');
    expect(t.snapshotMeta).toMatchObject({
      kind: 'full',
      vcpus: 1,
      memory_mb: 512,
      source_sandbox: 'tsrc',
    });
    expect((await readdir(t.dir)).sort()).toEqual(['rootfs.ext4', 'snapshot', 'template.json']);
    expect(await tick(port)).toBe(3);
    await expect(createTemplateFromSandbox(m, 'tsrc', 'team1', 'mine')).rejects.toMatchObject({
      code: 'conflict',
    });

    // A sandbox from it restores the snapshot's memory (the counter goes on from 2).
    const child = await createSandbox(m, {
      sandboxId: 'tchild',
      teamId: 'team1',
      templateId: 'mine',
    });
    expect(driver.vm(child.vm!.pid)!.ram.source).toBe('snapshot');
    expect(await tick(m.slots.envdPort(child.slot))).toBe(3);
  });
});
