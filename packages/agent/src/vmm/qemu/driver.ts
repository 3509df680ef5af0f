import { readFileSync } from 'node:fs';
import {
  copyFile,
  constants as fsConstants,
  mkdir,
  mkdtemp,
  readFile,
  realpath,
  rm,
  stat,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { isValidId, pathExists, WrennError, wrennDir } from '@wrenn/common';
import { qcow2BackingFile } from '../../disk.ts';
import type {
  SnapshotMode,
  SnapshotResult,
  StartOptions,
  VmmCapabilities,
  VmmDriver,
  VmRef,
  VmSource,
  VmSpec,
  VmStatus,
} from '../driver.ts';
import { type Accelerator, type QemuVmSpec, qemuArgs } from './args.ts';
import { freeLoopbackPort } from './net.ts';
import { isOurQemu, readPidFile, spawnDaemon, terminate } from './process.ts';
import { MAX_SOCKET_PATH, QmpClient } from './qmp.ts';
import {
  loadState,
  readSnapshotMeta,
  SNAPSHOT_FILES,
  type SnapshotMeta,
  saveState,
  writeSnapshotMeta,
} from './snapshot.ts';
import { streamTool, streamToolDir } from './stream-tool.ts';

/** envd's port inside every guest (E2B's). */
export const ENVD_GUEST_PORT = 49983;

/** The files the driver creates in a VM's runDir; kill() removes the first two. */
export const RUNTIME_FILES = {
  qmp: 'qmp.sock',
  pid: 'qemu.pid',
  console: 'console.log',
  /** FIFO through which a state save's writer reports its exit (only during a save). */
  saveStatus: 'save-status.fifo',
} as const;

export interface QemuDriverOptions {
  accel: Accelerator;
  /** Budget for QMP connect + negotiation (a loaded TCG host can be slow to answer). */
  qmpConnectTimeoutMs?: number;
  qmpCommandTimeoutMs?: number;
  /** Budget for writing or loading one state stream. */
  migrationTimeoutMs?: number;
  /** Where the `wrenn-stream` helper is compiled and cached (default WRENN_DIR/cache/bin). */
  binDir?: string;
}

/**
 * The QEMU implementation of the VMM port (`-M microvm`, driven over QMP).
 *
 * Every VM's QEMU is daemonized (own session, pidfile, QMP socket and console log in
 * `spec.runDir`), so it outlives the agent; a new driver instance re-attaches with adopt().
 * All VMs are built with their RAM in one memory backend named the same way (anonymous,
 * a private mapping of a template's memory file, or a shared file while building a
 * template), so any of them can be saved and restored into any other kind.
 */
export class QemuDriver implements VmmDriver {
  readonly name = 'qemu';
  readonly capabilities: VmmCapabilities = { templateSnapshots: true, reAdopt: true };
  readonly accel: Accelerator;
  private readonly clients = new Map<string, Promise<QmpClient>>();
  /** VMs whose RAM now *is* a template: running them again would corrupt every clone. */
  private readonly frozen = new Set<string>();
  private readonly opts: Required<QemuDriverOptions>;

  constructor(opts: QemuDriverOptions) {
    this.opts = {
      qmpConnectTimeoutMs: 30_000,
      qmpCommandTimeoutMs: 30_000,
      migrationTimeoutMs: 600_000,
      binDir: streamToolDir(wrennDir()),
      ...opts,
    };
    this.accel = opts.accel;
  }

  async start(spec: VmSpec, source: VmSource, opts: StartOptions = {}): Promise<VmRef> {
    return this.launch(spec, source, undefined, opts.stopped === true);
  }

  /**
   * Boot cold with guest RAM written through to `memoryFile` (`share=on`): the only way
   * to make a VM that can be saved as a template. QEMU-specific; see template.ts.
   */
  async startWithSharedMemory(spec: VmSpec, memoryFile: string): Promise<VmRef> {
    return this.launch(spec, { kind: 'cold' }, resolve(memoryFile));
  }

  private async launch(
    spec: VmSpec,
    source: VmSource,
    sharedMemoryFile?: string,
    stopped = false,
  ): Promise<VmRef> {
    validateSpec(spec);
    await mkdir(spec.runDir, { recursive: true });
    const files = runtimePaths(spec.runDir);
    await this.refuseIfRunning(spec);
    await rm(files.qmp, { force: true });
    await rm(files.pid, { force: true });

    let meta: SnapshotMeta | undefined;
    const qspec = this.qemuSpec(spec);
    if (source.kind === 'cold') {
      if (sharedMemoryFile) qspec.memoryFile = { path: sharedMemoryFile, share: true };
      else qspec.ramBackend = true;
    } else {
      meta = await readSnapshotMeta(source.snapshotDir);
      checkCompatible(spec, this.accel, meta, source);
      if (source.kind === 'template') {
        await checkTemplateOverlay(
          spec.overlay,
          join(source.snapshotDir, meta.disk ?? SNAPSHOT_FILES.disk),
        );
        // Private mapping: clones share the file's pages until they write (copy-on-write).
        qspec.memoryFile = { path: join(source.snapshotDir, SNAPSHOT_FILES.memory), share: false };
      } else {
        // A pause snapshot carries all RAM in its stream: restore into anonymous RAM, so it
        // never depends on a template file that may be deleted meanwhile.
        qspec.ramBackend = true;
      }
      qspec.incoming = 'defer';
      qspec.paused = true;
    }

    if (stopped) qspec.paused = true;
    const pid = await spawnDaemon(qemuArgs(qspec), files.pid);
    const ref: VmRef = { vmId: spec.vmId, runDir: spec.runDir, pid, spec };
    if (sharedMemoryFile) ref.sharedMemoryFile = sharedMemoryFile;
    try {
      const qmp = await this.qmp(ref);
      if (source.kind !== 'cold') {
        await loadState(
          qmp,
          join(source.snapshotDir, SNAPSHOT_FILES.state),
          source.kind === 'template',
          await this.loadOpts(),
        );
        if (!stopped) await qmp.execute('cont');
      }
      return ref;
    } catch (e) {
      await this.kill(ref).catch(() => {});
      const tail = await consoleTail(files.console);
      throw new WrennError(
        e instanceof WrennError ? e.code : 'internal',
        `starting VM ${spec.vmId} (${source.kind}) failed: ${(e as Error).message}${tail ? ` — console: ${tail}` : ''}`,
        { cause: e },
      );
    }
  }

  async adopt(ref: VmRef): Promise<VmRef | undefined> {
    const files = runtimePaths(ref.runDir);
    const pid = (await readPidFile(files.pid)) ?? ref.pid;
    if (!(await isOurQemu(pid, processName(ref.vmId)))) {
      // Gone: its runtime files are stale. Disks and snapshots are the caller's.
      await rm(files.qmp, { force: true });
      await rm(files.pid, { force: true });
      return undefined;
    }
    const adopted: VmRef = { ...ref, pid };
    await this.qmp(adopted);
    return adopted;
  }

  async pause(ref: VmRef): Promise<void> {
    await (await this.qmp(ref)).execute('stop');
  }

  async resume(ref: VmRef): Promise<void> {
    if (this.frozen.has(ref.vmId)) {
      throw new WrennError(
        'failed_precondition',
        `VM ${ref.vmId} was saved as a template: its RAM file is the template now and it must not run again`,
      );
    }
    await (await this.qmp(ref)).execute('cont');
  }

  async snapshotToDir(ref: VmRef, dir: string, mode: SnapshotMode): Promise<SnapshotResult> {
    const qmp = await this.qmp(ref);
    const { status } = await qmp.execute<{ status: string }>('query-status');
    if (status === 'running') {
      throw new WrennError(
        'failed_precondition',
        `VM ${ref.vmId} is running: pause it before taking a snapshot`,
      );
    }
    await mkdir(dir, { recursive: true });
    const statePath = join(dir, SNAPSHOT_FILES.state);
    if (mode === 'full') {
      const stateBytes = await saveState(qmp, statePath, false, await this.saveOpts(ref.runDir));
      await writeSnapshotMeta(dir, this.meta(ref, 'full', stateBytes));
      return { files: [SNAPSHOT_FILES.state, SNAPSHOT_FILES.meta], bytes: stateBytes };
    }
    if (ref.sharedMemoryFile) return this.saveTemplateInPlace(ref, qmp, dir);
    return this.saveTemplateFromPrivateRam(ref, qmp, dir);
  }

  /**
   * Template from a VM whose RAM is already a shared file: only device state is streamed
   * (x-ignore-shared). The VM is frozen afterwards — its RAM file is the template.
   */
  private async saveTemplateInPlace(
    ref: VmRef,
    qmp: QmpClient,
    dir: string,
  ): Promise<SnapshotResult> {
    const memory = join(dir, SNAPSHOT_FILES.memory);
    this.frozen.add(ref.vmId);
    const stateBytes = await saveState(
      qmp,
      join(dir, SNAPSHOT_FILES.state),
      true,
      await this.saveOpts(ref.runDir),
    );
    // The save flushed the disk and guest RAM is stopped: both files are consistent now.
    if (!(await samePath(ref.sharedMemoryFile!, memory)))
      await cloneFile(ref.sharedMemoryFile!, memory);
    const disk = await this.templateDisk(ref, dir);
    await writeSnapshotMeta(dir, { ...this.meta(ref, 'template', stateBytes), disk });
    const memBytes = (await stat(memory)).size;
    const diskBytes = (await stat(join(dir, disk))).size;
    return {
      files: [SNAPSHOT_FILES.memory, SNAPSHOT_FILES.state, disk, SNAPSHOT_FILES.meta],
      bytes: stateBytes + memBytes + diskBytes,
    };
  }

  /** The VM's overlay if it already lives in `dir`, else a copy of it as disk.qcow2. */
  private async templateDisk(ref: VmRef, dir: string): Promise<string> {
    if (await samePath(dirname(ref.spec.overlay), dir)) return basename(ref.spec.overlay);
    await cloneFile(ref.spec.overlay, join(dir, SNAPSHOT_FILES.disk));
    return SNAPSHOT_FILES.disk;
  }

  /**
   * Template from an ordinary VM (private RAM), which keeps running afterwards: stream its
   * full state to a scratch file, load that into a helper VM whose RAM is a shared file in
   * `dir`, and save the helper as a template. Costs one extra restore.
   */
  private async saveTemplateFromPrivateRam(
    ref: VmRef,
    qmp: QmpClient,
    dir: string,
  ): Promise<SnapshotResult> {
    // The helper's runDir is short (socket path limit) and its stream is scratch.
    const helperDir = await mkdtemp(join(tmpdir(), 'wrenn-tpl-'));
    const disk = join(dir, SNAPSHOT_FILES.disk);
    try {
      await saveState(
        qmp,
        join(helperDir, SNAPSHOT_FILES.state),
        false,
        await this.saveOpts(ref.runDir),
      );
      await cloneFile(ref.spec.overlay, disk);
      const helperSpec: VmSpec = {
        ...ref.spec,
        vmId: `${ref.vmId}-tpl`,
        runDir: helperDir,
        overlay: disk,
        network: { kind: 'user', envdHostPort: await freeLoopbackPort() },
      };
      const qspec = this.qemuSpec(helperSpec);
      qspec.memoryFile = { path: join(dir, SNAPSHOT_FILES.memory), share: true };
      qspec.incoming = 'defer';
      qspec.paused = true;
      const pid = await spawnDaemon(qemuArgs(qspec), runtimePaths(helperDir).pid);
      const helper: VmRef = { vmId: helperSpec.vmId, runDir: helperDir, pid, spec: helperSpec };
      try {
        const hq = await this.qmp(helper);
        await loadState(hq, join(helperDir, SNAPSHOT_FILES.state), false, await this.loadOpts());
        const stateBytes = await saveState(
          hq,
          join(dir, SNAPSHOT_FILES.state),
          true,
          await this.saveOpts(helperDir),
        );
        await writeSnapshotMeta(dir, {
          ...this.meta(ref, 'template', stateBytes),
          disk: SNAPSHOT_FILES.disk,
        });
        const memBytes = (await stat(join(dir, SNAPSHOT_FILES.memory))).size;
        return {
          files: [
            SNAPSHOT_FILES.memory,
            SNAPSHOT_FILES.state,
            SNAPSHOT_FILES.disk,
            SNAPSHOT_FILES.meta,
          ],
          bytes: stateBytes + memBytes + (await stat(disk)).size,
        };
      } finally {
        await this.kill(helper);
      }
    } finally {
      await rm(helperDir, { recursive: true, force: true });
    }
  }

  async forwardPort(ref: VmRef, guestPort: number): Promise<number> {
    if (!Number.isInteger(guestPort) || guestPort < 1 || guestPort > 65535) {
      throw new WrennError('invalid_argument', `guest port ${guestPort} is out of range`);
    }
    const qmp = await this.qmp(ref);
    let lastErr = '';
    // The free port can be taken between probing and QEMU's bind: try a few.
    for (let attempt = 0; attempt < 5; attempt++) {
      const hostPort = await freeLoopbackPort();
      const out = await qmp.hmp(`hostfwd_add net0 tcp:127.0.0.1:${hostPort}-:${guestPort}`);
      if (out.trim() === '') return hostPort;
      lastErr = out.trim();
    }
    throw new WrennError(
      'unavailable',
      `cannot forward guest port ${guestPort} of VM ${ref.vmId}: ${lastErr}`,
    );
  }

  async query(ref: VmRef): Promise<VmStatus> {
    if (!(await isOurQemu(ref.pid, processName(ref.vmId))))
      return { alive: false, state: 'exited' };
    const { status } = await (await this.qmp(ref)).execute<{ status: string }>('query-status');
    return { alive: true, state: status };
  }

  async kill(ref: VmRef): Promise<void> {
    const files = runtimePaths(ref.runDir);
    const pending = this.clients.get(ref.vmId);
    this.clients.delete(ref.vmId);
    if (pending)
      await pending.then(
        (c) => c.close(),
        () => {},
      );
    await terminate(ref.pid, processName(ref.vmId));
    this.frozen.delete(ref.vmId);
    // INVARIANT: only the driver's runtime files go; the overlay, snapshots and the
    // console log (post-mortems) stay for the caller.
    await rm(files.qmp, { force: true });
    await rm(files.pid, { force: true });
  }

  /** Drop QMP connections without touching the VMs (agent shutdown leaving VMs running). */
  async detachAll(): Promise<void> {
    const all = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(
      all.map((p) =>
        p.then(
          (c) => c.close(),
          () => {},
        ),
      ),
    );
  }

  /** One QMP connection per VM, opened on first use and reopened after a drop. */
  private qmp(ref: VmRef): Promise<QmpClient> {
    const existing = this.clients.get(ref.vmId);
    if (existing) {
      return existing.then(
        (c) => (c.closed ? this.reconnect(ref, existing) : c),
        () => this.reconnect(ref, existing),
      );
    }
    return this.reconnect(ref, undefined);
  }

  private reconnect(ref: VmRef, stale: Promise<QmpClient> | undefined): Promise<QmpClient> {
    const current = this.clients.get(ref.vmId);
    if (current && current !== stale) return current; // someone else already reconnected
    const sock = runtimePaths(ref.runDir).qmp;
    const p = (async () => {
      if (!(await isOurQemu(ref.pid, processName(ref.vmId)))) {
        throw new WrennError(
          'unavailable',
          `VM ${ref.vmId} is not running (QEMU pid ${ref.pid} is gone)`,
        );
      }
      // QEMU creates the socket before it daemonizes, so a live VM without one is
      // unreachable (its runDir was removed): say so now rather than retry until timeout.
      if (!(await pathExists(sock))) {
        throw new WrennError(
          'unavailable',
          `VM ${ref.vmId} is running but its QMP socket ${sock} is gone`,
        );
      }
      const c = await QmpClient.connect(sock, {
        timeoutMs: this.opts.qmpConnectTimeoutMs,
        commandTimeoutMs: this.opts.qmpCommandTimeoutMs,
      });
      c.whenClosed().then(() => {
        if (this.clients.get(ref.vmId) === p) this.clients.delete(ref.vmId);
      });
      return c;
    })();
    this.clients.set(ref.vmId, p);
    p.catch(() => {
      if (this.clients.get(ref.vmId) === p) this.clients.delete(ref.vmId);
    });
    return p;
  }

  private async refuseIfRunning(spec: VmSpec): Promise<void> {
    const pid = await readPidFile(runtimePaths(spec.runDir).pid);
    if (pid !== undefined && (await isOurQemu(pid, processName(spec.vmId)))) {
      throw new WrennError(
        'conflict',
        `VM ${spec.vmId} is already running in ${spec.runDir} (QEMU pid ${pid})`,
      );
    }
  }

  /** The QEMU description of a VM, as every start uses it (benchmarks reuse it for raw floors). */
  qemuSpec(spec: VmSpec): QemuVmSpec {
    const files = runtimePaths(spec.runDir);
    return {
      name: processName(spec.vmId),
      accel: this.accel,
      vcpus: spec.vcpus,
      memoryMb: spec.memoryMb,
      kernel: spec.kernel,
      initrd: spec.initrd,
      cmdline: [defaultCmdline(this.accel), spec.cmdline].filter(Boolean).join(' '),
      rootDisk: { path: spec.overlay, format: 'qcow2' },
      net: {
        mode: 'user',
        forwards: [{ hostPort: spec.network.envdHostPort, guestPort: ENVD_GUEST_PORT }],
      },
      console: { kind: 'file', path: files.console },
      qmpSocket: files.qmp,
      pidFile: files.pid,
      daemonize: true,
    };
  }

  private async saveOpts(runDir: string) {
    return {
      fifo: join(runDir, RUNTIME_FILES.saveStatus),
      tool: await streamTool(this.opts.binDir),
      timeoutMs: this.opts.migrationTimeoutMs,
    };
  }

  private async loadOpts() {
    return { tool: await streamTool(this.opts.binDir), timeoutMs: this.opts.migrationTimeoutMs };
  }

  private meta(ref: VmRef, mode: SnapshotMode, stateBytes: number): SnapshotMeta {
    return {
      version: 1,
      mode,
      vcpus: ref.spec.vcpus,
      memoryMb: ref.spec.memoryMb,
      accel: this.accel,
      createdAt: new Date().toISOString(),
      stateBytes,
    };
  }
}

/** QEMU's `-name`: identifies the VM's process (see isOurQemu). */
export const processName = (vmId: string) => `wrenn-${vmId}`;

export function runtimePaths(runDir: string) {
  return {
    qmp: join(runDir, RUNTIME_FILES.qmp),
    pid: join(runDir, RUNTIME_FILES.pid),
    console: join(runDir, RUNTIME_FILES.console),
  };
}

let cachedCmdline: string | undefined;

/**
 * Kernel arguments the driver always passes. Under TCG on a busy host the kernel's TSC
 * calibration against the PIT fails, the TSC is declared unstable and boot stalls
 * ("tsc: Unable to calibrate against PIT"); TCG's TSC ticks at the host's rate, so hand
 * the kernel the host's frequency instead of letting it measure.
 */
export function defaultCmdline(accel: Accelerator): string {
  if (accel !== 'tcg') return 'console=ttyS0 panic=-1';
  if (cachedCmdline === undefined) {
    let khz = 0;
    try {
      const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
      const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(cpuinfo)?.[1]);
      if (mhz > 0) khz = Math.round(mhz * 1000);
    } catch {}
    cachedCmdline = ['console=ttyS0 panic=-1', khz ? `tsc_early_khz=${khz}` : '']
      .filter(Boolean)
      .join(' ');
  }
  return cachedCmdline;
}

function validateSpec(spec: VmSpec): void {
  if (!isValidId(spec.vmId))
    throw new WrennError(
      'invalid_argument',
      `VM id ${JSON.stringify(spec.vmId)} is not a valid id`,
    );
  if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1 || spec.vcpus > 64) {
    throw new WrennError('invalid_argument', `vcpus must be 1..64, got ${spec.vcpus}`);
  }
  if (!Number.isInteger(spec.memoryMb) || spec.memoryMb < 64) {
    throw new WrennError(
      'invalid_argument',
      `memoryMb must be an integer ≥ 64, got ${spec.memoryMb}`,
    );
  }
  const sock = runtimePaths(spec.runDir).qmp;
  if (sock.length > MAX_SOCKET_PATH) {
    throw new WrennError(
      'invalid_argument',
      `runDir is too long for a unix socket path (${sock.length} > ${MAX_SOCKET_PATH}): ${spec.runDir}`,
    );
  }
  // QEMU's option syntax splits on commas; a comma in a path would silently change options.
  for (const p of [spec.runDir, spec.kernel, spec.initrd, spec.overlay]) {
    if (p.includes(','))
      throw new WrennError('invalid_argument', `paths given to QEMU must not contain commas: ${p}`);
  }
}

function checkCompatible(
  spec: VmSpec,
  accel: Accelerator,
  meta: SnapshotMeta,
  source: VmSource,
): void {
  const want = source.kind === 'template' ? 'template' : 'full';
  const dir = source.kind === 'cold' ? '' : source.snapshotDir;
  if (meta.mode !== want) {
    throw new WrennError(
      'failed_precondition',
      `${dir} is a ${meta.mode} snapshot, not a ${want} one`,
    );
  }
  if (meta.vcpus !== spec.vcpus || meta.memoryMb !== spec.memoryMb) {
    throw new WrennError(
      'failed_precondition',
      `${dir} was saved with ${meta.vcpus} vCPU / ${meta.memoryMb} MiB; it cannot restore into ${spec.vcpus} vCPU / ${spec.memoryMb} MiB`,
    );
  }
  if (meta.accel !== accel) {
    throw new WrennError(
      'failed_precondition',
      `${dir} was saved under ${meta.accel}; this host runs ${accel}`,
    );
  }
}

/** A clone's overlay must sit on the template's disk.qcow2, whose page cache is in the RAM. */
async function checkTemplateOverlay(overlay: string, want: string): Promise<void> {
  const backing = await qcow2BackingFile(overlay);
  if (!backing || !(await samePath(backing, want))) {
    throw new WrennError(
      'invalid_argument',
      `overlay ${overlay} is backed by ${backing ?? 'nothing'}; a clone of this template must be backed by ${want} (its RAM holds that disk's page cache)`,
    );
  }
}

async function samePath(a: string, b: string): Promise<boolean> {
  const [ra, rb] = await Promise.all([
    realpath(a).catch(() => resolve(a)),
    realpath(b).catch(() => resolve(b)),
  ]);
  return ra === rb;
}

/** Copy, as a reflink where the filesystem can (instant, shares blocks). */
async function cloneFile(from: string, to: string): Promise<void> {
  await copyFile(from, to, fsConstants.COPYFILE_FICLONE);
}

async function consoleTail(path: string): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.trim().split('\n').slice(-3).join(' | ');
}
