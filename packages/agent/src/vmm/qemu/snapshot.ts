import { execFile } from 'node:child_process';
import { constants as fsConstants, openSync } from 'node:fs';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WrennError, writeFileAtomic } from '@wrenn/common';
import type { SnapshotMode } from '../driver.ts';
import type { Accelerator } from './args.ts';
import type { QmpClient } from './qmp.ts';

/**
 * Snapshot files and the migration streams that write and read them.
 *
 *   full:     vmstate (RAM + device state), vmm.json
 *   template: memory (guest RAM, mapped by clones copy-on-write), vmstate (device state
 *             only, x-ignore-shared), the disk the RAM's page cache belongs to (clones'
 *             overlays sit on it: the build VM's overlay when it lives in the snapshot
 *             dir, else a copy named disk.qcow2; vmm.json names it), vmm.json
 *
 * INVARIANT: a restore uses the same machine, devices, vCPU count and RAM size as the save
 * (vmm.json records them and start() refuses a mismatch): QEMU migration streams only load
 * into an identical VM.
 */
export const SNAPSHOT_FILES = {
  state: 'vmstate',
  memory: 'memory',
  disk: 'disk.qcow2',
  meta: 'vmm.json',
} as const;

export interface SnapshotMeta {
  version: 1;
  mode: SnapshotMode;
  vcpus: number;
  memoryMb: number;
  accel: Accelerator;
  createdAt: string;
  /** Bytes of the state stream. */
  stateBytes: number;
  /** Template only: the disk (in the snapshot dir) clones' overlays must be backed by. */
  disk?: string;
}

export async function writeSnapshotMeta(dir: string, meta: SnapshotMeta): Promise<void> {
  await writeFileAtomic(join(dir, SNAPSHOT_FILES.meta), `${JSON.stringify(meta, null, 2)}\n`);
}

export async function readSnapshotMeta(dir: string): Promise<SnapshotMeta> {
  const path = join(dir, SNAPSHOT_FILES.meta);
  const text = await readFile(path, 'utf8').catch((e) => {
    throw new WrennError(
      'not_found',
      `snapshot ${dir} has no readable ${SNAPSHOT_FILES.meta}: ${(e as Error).message}`,
    );
  });
  let m: Partial<SnapshotMeta>;
  try {
    m = JSON.parse(text) as Partial<SnapshotMeta>;
  } catch {
    throw new WrennError('failed_precondition', `snapshot meta ${path} is not JSON`);
  }
  if (
    m.version !== 1 ||
    (m.mode !== 'full' && m.mode !== 'template') ||
    !Number.isInteger(m.vcpus) ||
    !Number.isInteger(m.memoryMb) ||
    (m.accel !== 'tcg' && m.accel !== 'kvm') ||
    !Number.isInteger(m.stateBytes)
  ) {
    throw new WrennError('failed_precondition', `snapshot meta ${path} is malformed`);
  }
  // A truncated state stream fails late and obscurely inside QEMU; catch it here.
  const size = await stat(join(dir, SNAPSHOT_FILES.state)).then(
    (s) => s.size,
    () => -1,
  );
  if (size !== m.stateBytes) {
    throw new WrennError(
      'failed_precondition',
      `snapshot ${dir}: ${SNAPSHOT_FILES.state} is ${size < 0 ? 'missing' : `${size} bytes`}, expected ${m.stateBytes}`,
    );
  }
  return m as SnapshotMeta;
}

/** Quote for /bin/sh: QEMU runs `exec:` migration URIs through the shell. */
export const shellQuote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

const execFileP = promisify(execFile);

const MIGRATION_END = new Set(['completed', 'failed', 'cancelled']);

/**
 * Run one migration (outgoing `migrate` or incoming `migrate-incoming`) to its end.
 * The MIGRATION event wait is armed before the command, so a fast migration cannot finish
 * unseen; a VM dying mid-stream rejects through the closed QMP connection.
 */
async function runMigration(
  qmp: QmpClient,
  command: 'migrate' | 'migrate-incoming',
  uri: string,
  timeoutMs: number,
) {
  const end = qmp.waitEvent(
    'MIGRATION',
    (e) => MIGRATION_END.has(String(e.data?.status)),
    timeoutMs,
  );
  end.catch(() => {}); // observed below; avoid an unhandled rejection if the command throws first
  await qmp.execute(command, { uri });
  const ev = await end;
  if (ev.data?.status !== 'completed') {
    const info = await qmp
      .execute<{ 'error-desc'?: string }>('query-migrate')
      .catch(() => ({}) as { 'error-desc'?: string });
    throw new WrennError(
      'internal',
      `${command} ${ev.data?.status}: ${info['error-desc'] ?? 'QEMU gave no reason'}`,
    );
  }
}

export async function setMigrationCaps(qmp: QmpClient, ignoreShared: boolean): Promise<void> {
  await qmp.execute('migrate-set-capabilities', {
    capabilities: [
      { capability: 'events', state: true },
      { capability: 'x-ignore-shared', state: ignoreShared },
    ],
  });
}

/**
 * Stream the (stopped) VM's state into `file`. The VM is left in `postmigrate`: its disks
 * are flushed and released; `cont` takes them back and runs it again (a second save needs
 * a `cont` + `stop` first: QEMU refuses to migrate a VM paused by a migration).
 *
 * The writer is `wrenn-stream save` (`tool`, see native/wrenn_stream.c): it exits 0 only
 * once the file is on disk, having written it back while it arrived. QEMU reports
 * `completed` as soon as the stream has left it, before its writer has finished — or
 * failed on a full disk. So the writer reports its own exit status and error text through
 * a FIFO (no disk space needed), and only a clean exit renames `file.part` to `file`.
 */
export async function saveState(
  qmp: QmpClient,
  file: string,
  ignoreShared: boolean,
  opts: { fifo: string; tool: string; timeoutMs?: number },
): Promise<number> {
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const part = `${file}.part`;
  await Promise.all([
    rm(file, { force: true }),
    rm(part, { force: true }),
    rm(opts.fifo, { force: true }),
  ]);
  // The FIFO (a mkfifo process) is made while QEMU takes the migration settings.
  const statusP = writerStatus(opts.fifo);
  statusP.catch(() => {}); // awaited below
  try {
    await setMigrationCaps(qmp, ignoreShared);
    // The default bandwidth cap (128 MiB/s) is for live migration over a network; the VM is
    // stopped and the target is a local file, so lift it.
    await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 1024 ** 3 });
  } catch (e) {
    (await statusP.catch(() => undefined))?.abort(e);
    await rm(opts.fifo, { force: true });
    throw e;
  }
  const status = await statusP;
  try {
    const writer = `{ ${shellQuote(opts.tool)} save ${shellQuote(part)} 2>&3; echo "exit=$?" >&3; } 3>${shellQuote(opts.fifo)}`;
    const migrated = runMigration(qmp, 'migrate', `exec:${writer}`, timeoutMs);
    migrated.catch((e) => status.abort(e));
    const [m, w] = await Promise.allSettled([migrated, status.done]);
    // The writer's own error (disk full) explains a failure better than QEMU's broken pipe.
    if (w.status === 'fulfilled' && w.value.code !== 0) {
      const why = w.value.text.trim() || `the writer exited with status ${w.value.code}`;
      throw new WrennError(
        /No space left/i.test(why) ? 'resource_exhausted' : 'internal',
        `writing ${file} failed: ${why}`,
      );
    }
    if (m.status === 'rejected') throw m.reason;
    if (w.status === 'rejected') throw w.reason;
    await rename(part, file);
    return await checkStreamComplete(file);
  } finally {
    status.abort(new WrennError('internal', 'state save abandoned'));
    await Promise.all([rm(part, { force: true }), rm(opts.fifo, { force: true })]);
  }
}

/**
 * A FIFO at `path` and the `exit=<code>` line (plus any error text before it) that the
 * writer shell prints into it. Opened read-write so it neither blocks nor sees EOF early.
 */
async function writerStatus(
  path: string,
): Promise<{ done: Promise<{ code: number; text: string }>; abort(e: unknown): void }> {
  await execFileP('mkfifo', ['-m', '600', path]).catch((e: unknown) => {
    throw new WrennError('internal', `mkfifo ${path} failed: ${(e as Error).message}`, {
      cause: e,
    });
  });
  // A plain fd, not a FileHandle: the Socket owns and closes it.
  const fd = openSync(path, fsConstants.O_RDWR | fsConstants.O_NONBLOCK);
  const sock = new Socket({ fd, readable: true, writable: false });
  let text = '';
  let settle!: {
    resolve: (v: { code: number; text: string }) => void;
    reject: (e: unknown) => void;
  };
  const done = new Promise<{ code: number; text: string }>((resolve, reject) => {
    settle = { resolve, reject };
  });
  done.catch(() => {}); // observed by the caller; never an unhandled rejection
  const close = () => {
    sock.destroy();
  };
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    text += d;
    const m = /exit=(\d+)\n/.exec(text);
    if (m) {
      close();
      settle.resolve({ code: Number(m[1]), text: text.slice(0, m.index) });
    }
  });
  sock.on('error', (e) => settle.reject(e));
  return {
    done,
    abort: (e) => {
      close();
      settle.reject(e);
    },
  };
}

/**
 * QEMU reports a migration `completed` once it has written the stream into the pipe, even
 * when the writer then fails (disk full). A complete stream ends with a
 * VMDESCRIPTION section: byte 0x06, a big-endian u32 length, and that many bytes of JSON
 * reaching exactly the end of the file. Returns the file's size.
 */
export async function checkStreamComplete(file: string): Promise<number> {
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    const n = Math.min(size, 1 << 20);
    const tail = Buffer.alloc(n);
    await fh.read(tail, 0, n, size - n);
    for (let i = n - 6; i >= 0; i--) {
      if (tail[i] !== 0x06 || tail.readUInt32BE(i + 1) !== n - i - 5) continue;
      try {
        JSON.parse(tail.subarray(i + 5).toString('utf8'));
        return size;
      } catch {}
    }
    throw new WrennError(
      'internal',
      `state stream ${file} is incomplete (${size} bytes, no trailing VM description): was the disk full?`,
    );
  } finally {
    await fh.close();
  }
}

/**
 * Load a state stream into a VM started with `-incoming defer -S`; it stays paused. The
 * reader is `wrenn-stream load` (`tool`): a 1 MiB pipe fed by splice(2).
 */
export async function loadState(
  qmp: QmpClient,
  file: string,
  ignoreShared: boolean,
  opts: { tool: string; timeoutMs?: number },
): Promise<void> {
  await setMigrationCaps(qmp, ignoreShared);
  const reader = `exec:${shellQuote(opts.tool)} load ${shellQuote(file)}`;
  await runMigration(qmp, 'migrate-incoming', reader, opts.timeoutMs ?? 600_000);
}
