import { execFile } from 'node:child_process';
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { promisify } from 'node:util';
import { WrennError } from '@wrenn/common';

/**
 * Disk images: qcow2 overlays on a template's base, their headers, flattening. The agent's
 * lifecycle and the QEMU driver (template builds, clone checks) share these.
 */

const execFileP = promisify(execFile);

/**
 * Blank overlays already made, by base (path, size, mtime), format and size. A new qcow2
 * overlay is the same bytes for every clone of a base, so after the first `qemu-img create`
 * a create writes those bytes itself instead of spawning qemu-img (~12 ms per create).
 */
const blankOverlays = new Map<string, Buffer>();
const BLANK_CACHE_MAX = 64;

/**
 * The sandbox's writable disk: a qcow2 overlay backed by the template's read-only raw
 * base image. Sized `diskMb` when given (must not be smaller than the base).
 */
export async function createSandboxOverlay(
  base: string,
  overlay: string,
  diskMb: number,
  baseFormat: 'raw' | 'qcow2' = 'raw',
): Promise<void> {
  const st = await stat(base).catch((e) => {
    throw new WrennError('not_found', `base image ${base}: ${(e as Error).message}`, { cause: e });
  });
  // qemu-img accepts an overlay smaller than its base: the guest would see a cut-off disk.
  const baseBytes =
    diskMb === 0 ? 0 : baseFormat === 'raw' ? st.size : await qcow2VirtualSize(base);
  if (diskMb * 1024 * 1024 < baseBytes) {
    throw new WrennError(
      'invalid_argument',
      `disk_mb ${diskMb} is smaller than the template's base image (${Math.ceil(baseBytes / 1024 / 1024)} MiB)`,
    );
  }
  const key = JSON.stringify([base, st.size, st.mtimeMs, st.ino, baseFormat, diskMb]);
  const blank = blankOverlays.get(key);
  if (blank) {
    await writeFile(overlay, blank, { flag: 'wx' }).catch((e) => {
      throw new WrennError(
        (e as NodeJS.ErrnoException).code === 'ENOSPC' ? 'resource_exhausted' : 'internal',
        `writing ${overlay}: ${(e as Error).message}`,
        { cause: e },
      );
    });
    return;
  }
  await createOverlay(base, baseFormat, overlay, diskMb);
  if (blankOverlays.size >= BLANK_CACHE_MAX) blankOverlays.clear();
  blankOverlays.set(key, await readFile(overlay));
}

/**
 * Create a qcow2 overlay at `out` whose reads fall through to `backing` (never written),
 * of `sizeMb` when given (else the backing's size).
 * A sandbox cloned from a template snapshot must sit on the snapshot's `disk.qcow2`, not
 * on the raw base image: the template's RAM holds page cache of exactly that disk.
 */
export async function createOverlay(
  backing: string,
  backingFormat: 'raw' | 'qcow2',
  out: string,
  sizeMb = 0,
): Promise<void> {
  const args = ['create', '-q', '-f', 'qcow2', '-b', resolve(backing), '-F', backingFormat, out];
  if (sizeMb > 0) args.push(`${sizeMb}M`);
  try {
    await execFileP('qemu-img', args);
  } catch (e) {
    const msg = (e as { stderr?: string }).stderr?.trim() || (e as Error).message;
    const code = /smaller than/i.test(msg)
      ? 'invalid_argument'
      : /No space left/i.test(msg)
        ? 'resource_exhausted'
        : 'internal';
    throw new WrennError(code, `qemu-img create ${out} on ${backing} failed: ${msg}`, {
      cause: e,
    });
  }
}

/** Flatten an overlay and its backing chain into a new raw image (a template from a sandbox). */
export async function flattenToRaw(overlay: string, out: string): Promise<void> {
  try {
    await execFileP('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'raw', overlay, out]);
  } catch (e) {
    const msg = (e as { stderr?: string }).stderr?.trim() || (e as Error).message;
    throw new WrennError('internal', `qemu-img convert ${overlay} failed: ${msg}`, { cause: e });
  }
}

/** The backing file named in a qcow2 header (absolute), or undefined for a standalone image. */
export async function qcow2BackingFile(path: string): Promise<string | undefined> {
  const fh = await open(path, 'r').catch((e) => {
    throw new WrennError('not_found', `disk ${path} cannot be opened: ${(e as Error).message}`, {
      cause: e,
    });
  });
  try {
    const header = Buffer.alloc(20);
    await fh.read(header, 0, 20, 0);
    if (header.readUInt32BE(0) !== 0x514649fb)
      throw new WrennError('invalid_argument', `${path} is not a qcow2 image`);
    const offset = Number(header.readBigUInt64BE(8));
    const size = header.readUInt32BE(16);
    if (offset === 0 || size === 0) return undefined;
    const name = Buffer.alloc(size);
    await fh.read(name, 0, size, offset);
    return resolve(dirname(path), name.toString('utf8'));
  } finally {
    await fh.close();
  }
}

/** A qcow2 image's virtual size: the big-endian u64 at byte 24 of its header. */
export async function qcow2VirtualSize(path: string): Promise<number> {
  const fh = await open(path, 'r');
  try {
    const header = Buffer.alloc(32);
    await fh.read(header, 0, 32, 0);
    if (header.readUInt32BE(0) !== 0x514649fb)
      throw new WrennError('failed_precondition', `${path} is not a qcow2 image`);
    return Number(header.readBigUInt64BE(24));
  } finally {
    await fh.close();
  }
}
