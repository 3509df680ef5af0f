/**
 * Raw QEMU floors for the agent's lifecycle figures, measured on the same files the agent
 * uses: what QEMU itself needs, with nothing of Wrenn's around it.
 *
 *   clone    spawn QEMU mapping a template's RAM privately with `-incoming defer`; over
 *            QMP set x-ignore-shared (QEMU 7.2 has no command-line switch for it) and
 *            `migrate-incoming exec:cat vmstate`; autostart → first GET /health 204.
 *   migrate  a running VM: QMP `stop` + `migrate exec:cat > file` (bandwidth cap lifted)
 *            → MIGRATION completed and the writer finished.
 *   restore  spawn QEMU with `-incoming exec:cat file` into anonymous RAM, autostart
 *            → first GET /health 204.
 *
 * The VMs use the driver's own machine description (QemuDriver.qemuSpec), so streams are
 * compatible with it; only daemonizing, the pidfile and QMP are left out.
 *
 * Exported for `bench/agent.ts` (each agent figure next to its floor, same run, same
 * files); run directly for the driver's own figures next to the floors:
 *   node --import tsx bench/vmm-floor.ts [--runs N] [--dir WRENN_DIR] [--image minimal]
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createOverlay } from '@wrenn/agent/disk.ts';
import type { VmSpec } from '@wrenn/agent/vmm/driver.ts';
import { QEMU_BINARY, qemuArgs } from '@wrenn/agent/vmm/qemu/args.ts';
import {
  buildTemplateSnapshot,
  freeLoopbackPort,
  hostAccelerator,
  QemuDriver,
  QmpClient,
  readSnapshotMeta,
  SNAPSHOT_FILES,
  waitEnvdHealthy,
} from '@wrenn/agent/vmm/qemu/index.ts';
import { shellQuote } from '@wrenn/agent/vmm/qemu/snapshot.ts';
import { wrennDir as defaultWrennDir } from '@wrenn/common';

export interface FloorVm {
  kernel: string;
  initrd: string;
  /** The image's kernel command line (the driver adds its defaults, as for real VMs). */
  cmdline?: string;
  vcpus: number;
  memoryMb: number;
}

/** The VM every floor and agent figure uses: an image's boot files, 1 vCPU, 512 MiB. */
export function floorVmOf(files: { kernel: string; initrd: string; cmdline?: string }): FloorVm {
  return {
    kernel: files.kernel,
    initrd: files.initrd,
    cmdline: files.cmdline,
    vcpus: 1,
    memoryMb: 512,
  };
}

export interface Figures {
  medianMs: number;
  samplesMs: number[];
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const figures = (samplesMs: number[]): Figures => ({ medianMs: median(samplesMs), samplesMs });

const READY_TIMEOUT_MS = 300_000;

/** A raw QEMU child (not daemonized), killed by the caller. */
interface RawVm {
  child: ChildProcess;
  port: number;
  qmp: QmpClient;
  ready(): Promise<void>;
  kill(): Promise<void>;
}

async function spawnRaw(
  driver: QemuDriver,
  vm: FloorVm,
  work: string,
  overlay: string,
  extra: { memoryFile?: string; stream: string; ignoreShared: boolean },
): Promise<RawVm> {
  const port = await freeLoopbackPort();
  const sock = join(work, 'q.sock');
  const spec: VmSpec = {
    ...vm,
    vmId: 'floor',
    runDir: work,
    overlay,
    network: { kind: 'user', envdHostPort: port },
  };
  const q = driver.qemuSpec(spec);
  q.daemonize = false;
  q.pidFile = undefined;
  q.qmpSocket = sock;
  q.console = { kind: 'none' };
  if (extra.memoryFile) q.memoryFile = { path: extra.memoryFile, share: false };
  else q.ramBackend = true;
  q.incoming = 'defer';
  const child = spawn(QEMU_BINARY, qemuArgs(q), { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  // x-ignore-shared can only be set over QMP (QEMU 7.2 has no command-line switch), and a
  // stream saved from a stopped VM loads into a stopped VM: `cont` is always needed.
  const qmp = await QmpClient.connect(sock);
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [
      { capability: 'events', state: true },
      { capability: 'x-ignore-shared', state: extra.ignoreShared },
    ],
  });
  const done = qmp.waitEvent(
    'MIGRATION',
    (e) => ['completed', 'failed'].includes(String(e.data?.status)),
    600_000,
  );
  await qmp.execute('migrate-incoming', { uri: `exec:cat ${shellQuote(extra.stream)}` });
  const ev = await done;
  if (ev.data?.status !== 'completed') throw new Error(`raw incoming migration ${ev.data?.status}`);
  await qmp.execute('cont');
  return {
    child,
    port,
    qmp,
    ready: () =>
      waitEnvdHealthy(port, READY_TIMEOUT_MS, {
        isDead: async () => child.exitCode !== null || child.signalCode !== null,
      }),
    kill: async () => {
      qmp.destroy();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * Raw clone floor: template snapshot dir (memory, vmstate, disk) → envd ready. Each run
 * gets a fresh overlay on the template's disk, as a sandbox would.
 */
export async function rawCloneFloor(
  driver: QemuDriver,
  vm: FloorVm,
  templateDir: string,
  runs: number,
): Promise<Figures> {
  const meta = await readSnapshotMeta(templateDir);
  const disk = join(templateDir, meta.disk ?? SNAPSHOT_FILES.disk);
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const work = await mkdtemp(join(tmpdir(), 'wrenn-floor-'));
    const overlay = join(work, 'rootfs.qcow2');
    await createOverlay(disk, 'qcow2', overlay);
    const t = performance.now();
    const raw = await spawnRaw(driver, vm, work, overlay, {
      memoryFile: join(templateDir, SNAPSHOT_FILES.memory),
      stream: join(templateDir, SNAPSHOT_FILES.state),
      ignoreShared: true,
    });
    try {
      await raw.ready();
      samples.push(performance.now() - t);
    } finally {
      await raw.kill();
      await rm(work, { recursive: true, force: true });
    }
  }
  return figures(samples);
}

/**
 * Raw migrate-to-file and restore floors: each run clones a VM from the template, lets
 * envd come up, then times `stop` + `migrate` to a file (migrate), the same plus an fsync
 * of the file (migrateFsync: what a durable pause cannot do without), and a fresh QEMU
 * loading that file to envd ready (restore). With `streamTool` (the agent's `wrenn-stream`),
 * a second clone is migrated through it (migrateTool: raw QEMU with the agent's own
 * copier, durable), which shows how much of a pause is Wrenn's bookkeeping.
 */
export async function rawPauseResumeFloors(
  driver: QemuDriver,
  vm: FloorVm,
  templateDir: string,
  runs: number,
  streamTool?: string,
): Promise<{
  migrate: Figures;
  migrateFsync: Figures;
  migrateTool?: Figures;
  restore: Figures;
  streamBytes: number;
}> {
  const meta = await readSnapshotMeta(templateDir);
  const disk = join(templateDir, meta.disk ?? SNAPSHOT_FILES.disk);
  const migrate: number[] = [];
  const migrateFsync: number[] = [];
  const restore: number[] = [];
  const migrateTool: number[] = [];
  let streamBytes = 0;
  for (let i = 0; i < runs; i++) {
    const work = await mkdtemp(join(tmpdir(), 'wrenn-floor-'));
    const overlay = join(work, 'rootfs.qcow2');
    const stream = join(work, 'full');
    const clone = async (overlay: string) => {
      await createOverlay(disk, 'qcow2', overlay);
      const raw = await spawnRaw(driver, vm, work, overlay, {
        memoryFile: join(templateDir, SNAPSHOT_FILES.memory),
        stream: join(templateDir, SNAPSHOT_FILES.state),
        ignoreShared: true,
      });
      await raw.ready().catch(async (e) => {
        await raw.kill();
        throw e;
      });
      return raw;
    };
    const src = await clone(overlay);
    try {
      const migrateMs = await rawMigrate(src, `cat > ${shellQuote(stream)}`, stream);
      migrate.push(migrateMs);
      streamBytes = (await stat(stream)).size;
      // What durability adds on top: the stream on disk, not just in the page cache.
      const t = performance.now();
      const fh = await open(stream, 'r');
      await fh.sync();
      await fh.close();
      migrateFsync.push(migrateMs + performance.now() - t);
    } finally {
      await src.kill();
    }
    const t = performance.now();
    const dst = await spawnRaw(driver, vm, work, overlay, { stream, ignoreShared: false });
    try {
      await dst.ready();
      restore.push(performance.now() - t);
    } finally {
      await dst.kill();
    }
    try {
      if (streamTool) {
        // A fresh clone, as for `migrate`: a clone's RAM maps the template file, a
        // restored VM's is anonymous, and the two migrate at different speeds.
        const src2 = await clone(join(work, 'rootfs2.qcow2'));
        try {
          const again = join(work, 'again');
          migrateTool.push(
            await rawMigrate(src2, `${shellQuote(streamTool)} save ${shellQuote(again)}`, again),
          );
        } finally {
          await src2.kill();
        }
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
  return {
    migrate: figures(migrate),
    migrateFsync: figures(migrateFsync),
    ...(streamTool ? { migrateTool: figures(migrateTool) } : {}),
    restore: figures(restore),
    streamBytes,
  };
}

/**
 * `stop` + `migrate exec:<writer>` of a running raw VM, to the writer's exit: the ms that
 * took (the migration settings are made before, untimed).
 */
async function rawMigrate(vm: RawVm, writer: string, file: string): Promise<number> {
  const qmp = vm.qmp;
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [{ capability: 'x-ignore-shared', state: false }],
  });
  await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 1024 ** 3 });
  const t = performance.now();
  await qmp.execute('stop');
  const done = qmp.waitEvent(
    'MIGRATION',
    (e) => ['completed', 'failed'].includes(String(e.data?.status)),
    600_000,
  );
  await qmp.execute('migrate', { uri: `exec:${writer}` });
  const ev = await done;
  if (ev.data?.status !== 'completed') throw new Error(`raw migrate ${ev.data?.status}`);
  await waitWriterDone(file, vm.child.pid!);
  return performance.now() - t;
}

/** The writer QEMU forked for `exec:` is done when QEMU has no child left. */
async function waitWriterDone(file: string, qemuPid: number): Promise<void> {
  const { readFile } = await import('node:fs/promises');
  for (;;) {
    const children = await readFile(`/proc/${qemuPid}/task/${qemuPid}/children`, 'utf8').catch(
      () => '',
    );
    if (children.trim() === '') break;
    await new Promise((r) => setTimeout(r, 1));
  }
  await stat(file);
}

/** The driver's figures for the same three operations, for ratios against the floors. */
export async function driverFigures(
  driver: QemuDriver,
  vm: FloorVm,
  templateDir: string,
  runs: number,
): Promise<{ clone: Figures; pause: Figures; restore: Figures }> {
  const meta = await readSnapshotMeta(templateDir);
  const disk = join(templateDir, meta.disk ?? SNAPSHOT_FILES.disk);
  const clone: number[] = [];
  const pause: number[] = [];
  const restore: number[] = [];
  for (let i = 0; i < runs; i++) {
    const work = await mkdtemp(join(tmpdir(), 'wrenn-drv-'));
    const overlay = join(work, 'rootfs.qcow2');
    await createOverlay(disk, 'qcow2', overlay);
    const spec: VmSpec = {
      ...vm,
      vmId: `bench-${i}`,
      runDir: join(work, 'vm'),
      overlay,
      network: { kind: 'user', envdHostPort: await freeLoopbackPort() },
    };
    let t = performance.now();
    const ref = await driver.start(spec, { kind: 'template', snapshotDir: templateDir });
    try {
      await waitEnvdHealthy(spec.network.envdHostPort, READY_TIMEOUT_MS);
      clone.push(performance.now() - t);
      t = performance.now();
      await driver.pause(ref);
      await driver.snapshotToDir(ref, join(work, 'snap'), 'full');
      pause.push(performance.now() - t);
    } finally {
      await driver.kill(ref);
    }
    const rspec = {
      ...spec,
      network: { kind: 'user' as const, envdHostPort: await freeLoopbackPort() },
    };
    t = performance.now();
    const back = await driver.start(rspec, { kind: 'snapshot', snapshotDir: join(work, 'snap') });
    try {
      await waitEnvdHealthy(rspec.network.envdHostPort, READY_TIMEOUT_MS);
      restore.push(performance.now() - t);
    } finally {
      await driver.kill(back);
      await rm(work, { recursive: true, force: true });
    }
  }
  return { clone: figures(clone), pause: figures(pause), restore: figures(restore) };
}

async function main() {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '10' },
      dir: { type: 'string' },
      image: { type: 'string', default: 'minimal' },
    },
  });
  const runs = Number(values.runs);
  const dir = defaultWrennDir(values.dir);
  const { listImages, bootFiles } = await import('@wrenn/images');
  const info = (await listImages(dir)).find((i) => i.name === values.image && i.valid);
  if (!info?.manifest)
    throw new Error(
      `image ${values.image} is not built in ${dir} (wrenn images build ${values.image})`,
    );
  const files = bootFiles(dir, { ...info, manifest: info.manifest });
  const { accelerator } = await hostAccelerator(dir);
  const driver = new QemuDriver({ accel: accelerator });
  const vm = floorVmOf(files);
  const work = await mkdtemp(join(tmpdir(), 'wrenn-vmm-bench-'));
  try {
    const tpl = await buildTemplateSnapshot(driver, {
      ...vm,
      rootfs: files.rootfs,
      snapshotDir: join(work, 'tpl'),
    });
    const templateDir = join(work, 'tpl');
    // Interleaved, one sample of each per round: a busy host's load drifts, and floor and
    // driver should see the same drift.
    const samples = {
      rawClone: [] as number[],
      rawMigrate: [] as number[],
      rawRestore: [] as number[],
    };
    const drvSamples = { clone: [] as number[], pause: [] as number[], restore: [] as number[] };
    let streamBytes = 0;
    for (let i = 0; i < runs; i++) {
      samples.rawClone.push(...(await rawCloneFloor(driver, vm, templateDir, 1)).samplesMs);
      const raw1 = await rawPauseResumeFloors(driver, vm, templateDir, 1);
      samples.rawMigrate.push(...raw1.migrate.samplesMs);
      samples.rawRestore.push(...raw1.restore.samplesMs);
      streamBytes = raw1.streamBytes;
      const d = await driverFigures(driver, vm, templateDir, 1);
      drvSamples.clone.push(...d.clone.samplesMs);
      drvSamples.pause.push(...d.pause.samplesMs);
      drvSamples.restore.push(...d.restore.samplesMs);
    }
    const rawClone = figures(samples.rawClone);
    const raw = {
      migrate: figures(samples.rawMigrate),
      restore: figures(samples.rawRestore),
      streamBytes,
    };
    const drv = {
      clone: figures(drvSamples.clone),
      pause: figures(drvSamples.pause),
      restore: figures(drvSamples.restore),
    };
    const row = (name: string, d: Figures, f: Figures) =>
      `${name.padEnd(24)} driver ${d.medianMs.toFixed(0).padStart(6)} ms   floor ${f.medianMs.toFixed(0).padStart(6)} ms   ratio ${(d.medianMs / f.medianMs).toFixed(2)}`;
    console.log(
      `vmm floors — ${accelerator}, ${vm.memoryMb} MiB, 1 vCPU, image ${values.image}, median of ${runs}`,
    );
    console.log(
      `template build: cold boot to envd ready ${tpl.bootMs.toFixed(0)} ms, save ${tpl.saveMs.toFixed(0)} ms`,
    );
    console.log(row('clone → envd ready', drv.clone, rawClone));
    console.log(row('pause (stop + save)', drv.pause, raw.migrate));
    console.log(row('restore → envd ready', drv.restore, raw.restore));
    console.log(`full stream ${(raw.streamBytes / 1e6).toFixed(1)} MB`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
