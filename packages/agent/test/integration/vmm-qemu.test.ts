import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { bootFiles, listImages } from '@wrenn/images';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createOverlay } from '../../src/disk.ts';
import type { VmRef, VmSpec } from '../../src/vmm/driver.ts';
import {
  buildTemplateSnapshot,
  freeLoopbackPort,
  hostAccelerator,
  QemuDriver,
  RUNTIME_FILES,
  SNAPSHOT_FILES,
  waitEnvdHealthy,
} from '../../src/vmm/qemu/index.ts';

// Real QEMU guests under the host's accelerator (TCG here): the `minimal` image built by
// the shared global setup. Every VM a test starts is killed in afterAll.

const execFileP = promisify(execFile);
const READY_MS = 300_000;
const MEMORY_MB = 512;

let work: string;
let driver: QemuDriver;
let image: { kernel: string; initrd: string; rootfs: string; cmdline: string };
let templateDir: string;
const started: VmRef[] = [];

beforeAll(async () => {
  const wrennDir = inject('wrennDir');
  const info = (await listImages(wrennDir)).find((i) => i.name === 'minimal' && i.valid);
  if (!info?.manifest) throw new Error(`image minimal is not built in ${wrennDir}`);
  image = bootFiles(wrennDir, { ...info, manifest: info.manifest });
  driver = new QemuDriver({ accel: (await hostAccelerator(wrennDir)).accelerator });
  work = await mkdtemp(join(tmpdir(), 'wrenn-vmm-'));
  templateDir = join(work, 'template');
});

afterAll(async () => {
  for (const ref of started) await driver.kill(ref).catch(() => {});
  await driver?.detachAll();
  if (work) await rm(work, { recursive: true, force: true });
});

async function specFor(
  name: string,
  overlayBacking: { path: string; format: 'raw' | 'qcow2' },
): Promise<VmSpec> {
  const overlay = join(work, `${name}.qcow2`);
  await createOverlay(overlayBacking.path, overlayBacking.format, overlay);
  return {
    vmId: name,
    runDir: join(work, name),
    vcpus: 1,
    memoryMb: MEMORY_MB,
    kernel: image.kernel,
    initrd: image.initrd,
    cmdline: image.cmdline,
    overlay,
    network: { kind: 'user', envdHostPort: await freeLoopbackPort() },
  };
}

const templateDisk = () => ({
  path: join(templateDir, SNAPSHOT_FILES.disk),
  format: 'qcow2' as const,
});

async function track(p: Promise<VmRef>): Promise<VmRef> {
  const ref = await p;
  started.push(ref);
  return ref;
}

const envd = (ref: VmRef) => `http://127.0.0.1:${ref.spec.network.envdHostPort}`;

async function putFile(ref: VmRef, path: string, data: Buffer): Promise<void> {
  const r = await fetch(`${envd(ref)}/files?path=${encodeURIComponent(path)}&username=root`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: data,
  });
  expect(r.status, await r.clone().text()).toBe(200);
}

async function getFile(ref: VmRef, path: string): Promise<{ status: number; body: Buffer }> {
  const r = await fetch(`${envd(ref)}/files?path=${encodeURIComponent(path)}&username=root`);
  return { status: r.status, body: Buffer.from(await r.arrayBuffer()) };
}

/** Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, session, ...]. */
async function procStat(pid: number): Promise<string[]> {
  const s = await readFile(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2).split(' ');
}

describe('QemuDriver with real guests', () => {
  it('cold-boots an image to envd /health, detached in its own session; kill removes runtime files but not the overlay', async () => {
    const spec = await specFor('cold', { path: image.rootfs, format: 'raw' });
    const ref = await track(driver.start(spec, { kind: 'cold' }));
    await waitEnvdHealthy(spec.network.envdHostPort, READY_MS);

    expect(await driver.query(ref)).toEqual({ alive: true, state: 'running' });
    const [, ppid, , session] = await procStat(ref.pid);
    const [, , , ourSession] = await procStat(process.pid);
    expect(Number(ppid)).not.toBe(process.pid);
    expect(session).not.toBe(ourSession); // -daemonize: setsid, then a second fork
    expect((await readFile(join(spec.runDir, RUNTIME_FILES.pid), 'utf8')).trim()).toBe(
      String(ref.pid),
    );
    expect(existsSync(join(spec.runDir, RUNTIME_FILES.qmp))).toBe(true);

    await driver.kill(ref);
    expect(existsSync(`/proc/${ref.pid}/cmdline`) && (await procStat(ref.pid))[0] !== 'Z').toBe(
      false,
    );
    expect(await driver.query(ref)).toEqual({ alive: false, state: 'exited' });
    expect(existsSync(join(spec.runDir, RUNTIME_FILES.qmp))).toBe(false);
    expect(existsSync(join(spec.runDir, RUNTIME_FILES.pid))).toBe(false);
    expect(existsSync(spec.overlay)).toBe(true);
  });

  it('builds a template snapshot whose device state is small and whose RAM is a file of guest size', async () => {
    const result = await buildTemplateSnapshot(driver, {
      ...image,
      vcpus: 1,
      memoryMb: MEMORY_MB,
      snapshotDir: templateDir,
      readyTimeoutMs: READY_MS,
    });
    expect(result.files.sort()).toEqual([...Object.values(SNAPSHOT_FILES)].sort());
    expect((await stat(join(templateDir, SNAPSHOT_FILES.memory))).size).toBe(
      MEMORY_MB * 1024 * 1024,
    );
    // x-ignore-shared: no guest RAM in the stream, only device state (tens of KB).
    expect((await stat(join(templateDir, SNAPSHOT_FILES.state))).size).toBeLessThan(1024 * 1024);
  });

  it('starts two clones at once from one template; both reach envd, map the same RAM file, and keep separate memory', async () => {
    const memoryFile = join(templateDir, SNAPSHOT_FILES.memory);
    const before = await readFile(memoryFile);
    const specs = await Promise.all(['clone-a', 'clone-b'].map((n) => specFor(n, templateDisk())));
    const [a, b] = await Promise.all(
      specs.map((s) => track(driver.start(s, { kind: 'template', snapshotDir: templateDir }))),
    );
    await Promise.all([a!, b!].map((r) => waitEnvdHealthy(r.spec.network.envdHostPort, READY_MS)));

    for (const r of [a!, b!]) {
      const maps = await readFile(`/proc/${r.pid}/maps`, 'utf8');
      expect(maps).toContain(memoryFile);
    }
    const token = randomBytes(16).toString('hex');
    await putFile(a!, '/dev/shm/who', Buffer.from(token));
    expect((await getFile(a!, '/dev/shm/who')).body.toString()).toBe(token);
    expect((await getFile(b!, '/dev/shm/who')).status).toBe(404);
    // Copy-on-write: what the clones wrote never reached the template's file.
    expect((await readFile(memoryFile)).equals(before)).toBe(true);
  });

  it('refuses a clone whose overlay is not backed by the template disk, before starting anything', async () => {
    const spec = await specFor('bad-backing', { path: image.rootfs, format: 'raw' });
    await expect(
      driver.start(spec, { kind: 'template', snapshotDir: templateDir }),
    ).rejects.toMatchObject({
      code: 'invalid_argument',
    });
    expect(existsSync(join(spec.runDir, RUNTIME_FILES.pid))).toBe(false);
  });

  it('keeps guest memory across a full snapshot, kill and restore (a tmpfs file survives)', async () => {
    const spec = await specFor('paused', templateDisk());
    const ref = await track(driver.start(spec, { kind: 'template', snapshotDir: templateDir }));
    await waitEnvdHealthy(spec.network.envdHostPort, READY_MS);
    const token = randomBytes(4096);
    await putFile(ref, '/dev/shm/token', token);

    await driver.pause(ref);
    expect((await driver.query(ref)).state).toBe('paused');
    const snapDir = join(work, 'paused-snapshot');
    const snap = await driver.snapshotToDir(ref, snapDir, 'full');
    expect(snap.files.sort()).toEqual([SNAPSHOT_FILES.meta, SNAPSHOT_FILES.state].sort());
    expect(snap.bytes).toBe((await stat(join(snapDir, SNAPSHOT_FILES.state))).size);
    await driver.kill(ref);

    const restored = await track(
      driver.start(
        { ...spec, network: { kind: 'user', envdHostPort: await freeLoopbackPort() } },
        { kind: 'snapshot', snapshotDir: snapDir },
      ),
    );
    await waitEnvdHealthy(restored.spec.network.envdHostPort, READY_MS);
    const back = await getFile(restored, '/dev/shm/token');
    expect(back.status).toBe(200);
    expect(back.body.equals(token)).toBe(true);

    // A paused VM answers again after resume; a snapshot of a running VM is refused.
    await expect(driver.snapshotToDir(restored, join(work, 'nope'), 'full')).rejects.toMatchObject({
      code: 'failed_precondition',
    });
    await driver.pause(restored);
    await driver.resume(restored);
    expect((await driver.query(restored)).state).toBe('running');
    await waitEnvdHealthy(restored.spec.network.envdHostPort, READY_MS);
  });

  it('makes a template from a running clone (private RAM), which keeps running; clones of it inherit its memory', async () => {
    const spec = await specFor('tpl-source', templateDisk());
    const src = await track(driver.start(spec, { kind: 'template', snapshotDir: templateDir }));
    await waitEnvdHealthy(spec.network.envdHostPort, READY_MS);
    const token = randomBytes(64);
    await putFile(src, '/dev/shm/inherited', token);
    await driver.pause(src);
    const derived = join(work, 'derived-template');
    const res = await driver.snapshotToDir(src, derived, 'template');
    expect(res.files.sort()).toEqual([...Object.values(SNAPSHOT_FILES)].sort());
    await driver.resume(src);
    await waitEnvdHealthy(spec.network.envdHostPort, READY_MS);
    expect((await getFile(src, '/dev/shm/inherited')).body.equals(token)).toBe(true);

    const child = await specFor('derived-clone', {
      path: join(derived, SNAPSHOT_FILES.disk),
      format: 'qcow2',
    });
    const clone = await track(driver.start(child, { kind: 'template', snapshotDir: derived }));
    await waitEnvdHealthy(child.network.envdHostPort, READY_MS);
    expect((await getFile(clone, '/dev/shm/inherited')).body.equals(token)).toBe(true);
    await driver.kill(clone);
    await driver.kill(src);
  });

  it('fails a save on a full disk with resource_exhausted, leaves no state file, and the VM resumes', async () => {
    if (process.getuid?.() !== 0) throw new Error('this test mounts a small tmpfs and needs root');
    const full = join(work, 'full-disk');
    await mkdir(full, { recursive: true });
    await execFileP('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'wrenn-vmm-test', full]);
    try {
      const spec = await specFor('diskfull', templateDisk());
      const ref = await track(driver.start(spec, { kind: 'template', snapshotDir: templateDir }));
      await waitEnvdHealthy(spec.network.envdHostPort, READY_MS);
      await driver.pause(ref);
      await expect(driver.snapshotToDir(ref, join(full, 'snap'), 'full')).rejects.toMatchObject({
        code: 'resource_exhausted',
      });
      expect(existsSync(join(full, 'snap', SNAPSHOT_FILES.state))).toBe(false);
      expect(existsSync(join(full, 'snap', SNAPSHOT_FILES.meta))).toBe(false);
      await driver.resume(ref);
      await waitEnvdHealthy(spec.network.envdHostPort, READY_MS);
      expect((await driver.query(ref)).state).toBe('running');
      await driver.kill(ref);
    } finally {
      await execFileP('umount', [full]);
    }
  });

  it('refuses a truncated state file or a size mismatch with a clear error and starts nothing', async () => {
    const snapDir = join(work, 'paused-snapshot');
    const spec = await specFor('mismatch', templateDisk());
    await expect(
      driver.start(
        { ...spec, memoryMb: MEMORY_MB * 2 },
        { kind: 'snapshot', snapshotDir: snapDir },
      ),
    ).rejects.toMatchObject({
      code: 'failed_precondition',
      message: expect.stringContaining('MiB'),
    });
    const broken = join(work, 'broken-snapshot');
    await rm(broken, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.cp(snapDir, broken, { recursive: true }));
    const size = (await stat(join(broken, SNAPSHOT_FILES.state))).size;
    await truncate(join(broken, SNAPSHOT_FILES.state), Math.floor(size / 2));
    await expect(
      driver.start(spec, { kind: 'snapshot', snapshotDir: broken }),
    ).rejects.toMatchObject({
      code: 'failed_precondition',
      message: expect.stringContaining('expected'),
    });
    expect(existsSync(join(spec.runDir, RUNTIME_FILES.pid))).toBe(false);
  });

  it('forwards a guest port to a new host loopback port at runtime (hostfwd_add)', async () => {
    const spec = await specFor('fwd', templateDisk());
    const ref = await track(driver.start(spec, { kind: 'template', snapshotDir: templateDir }));
    await waitEnvdHealthy(spec.network.envdHostPort, READY_MS);
    // envd is the one TCP server the minimal guest runs: forward its port a second time.
    const hostPort = await driver.forwardPort(ref, 49983);
    expect(hostPort).not.toBe(spec.network.envdHostPort);
    const r = await fetch(`http://127.0.0.1:${hostPort}/health`);
    expect(r.status).toBe(204);
    await expect(driver.forwardPort(ref, 70000)).rejects.toMatchObject({
      code: 'invalid_argument',
    });
    await driver.kill(ref);
  });

  it('a VM outlives the process that started it and is adopted by a new driver instance', async () => {
    const spec = await specFor('orphan', templateDisk());
    const refFile = join(work, 'orphan-ref.json');
    const starter = fileURLToPath(new URL('./vmm-starter.ts', import.meta.url));
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        starter,
        JSON.stringify({ spec, templateDir, refFile, accel: driver.accel }),
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    // The starter writes the ref and then waits forever: it dies only by our SIGKILL.
    const deadline = Date.now() + READY_MS;
    while (!existsSync(refFile)) {
      if (child.exitCode !== null) throw new Error(`starter exited early: ${stderr}`);
      if (Date.now() > deadline) throw new Error(`starter wrote no ref: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const ref = JSON.parse(await readFile(refFile, 'utf8')) as VmRef;
    started.push(ref);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));

    const fresh = new QemuDriver({ accel: driver.accel });
    const adopted = await fresh.adopt(ref);
    expect(adopted?.pid).toBe(ref.pid);
    expect(await fresh.query(adopted!)).toEqual({ alive: true, state: 'running' });
    await waitEnvdHealthy(spec.network.envdHostPort, READY_MS);
    await fresh.kill(adopted!);
    // Once it is gone, adopt says so and clears what is left of its runtime files.
    await writeFile(join(spec.runDir, RUNTIME_FILES.pid), `${ref.pid}\n`);
    expect(await fresh.adopt(ref)).toBeUndefined();
    expect(existsSync(join(spec.runDir, RUNTIME_FILES.pid))).toBe(false);
  });
});
