import { execFile } from 'node:child_process';
import { open, readFile, stat, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { WrennError } from '@wrenn/common';

const execFileP = promisify(execFile);
const QEMU_IMG = process.env.WRENN_QEMU_IMG ?? 'qemu-img';

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
export async function createOverlay(
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
  await qemuImgCreate(base, overlay, diskMb, baseFormat);
  if (blankOverlays.size >= BLANK_CACHE_MAX) blankOverlays.clear();
  blankOverlays.set(key, await readFile(overlay));
}

/** A qcow2 image's virtual size: the big-endian u64 at byte 24 of its header. */
async function qcow2VirtualSize(path: string): Promise<number> {
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

async function qemuImgCreate(
  base: string,
  overlay: string,
  diskMb: number,
  baseFormat: 'raw' | 'qcow2',
): Promise<void> {
  const args = ['create', '-q', '-f', 'qcow2', '-b', base, '-F', baseFormat, overlay];
  if (diskMb > 0) args.push(`${diskMb}M`);
  try {
    await execFileP(QEMU_IMG, args);
  } catch (e) {
    const stderr = String((e as { stderr?: string }).stderr ?? '').trim();
    if (/smaller than/i.test(stderr)) {
      throw new WrennError(
        'invalid_argument',
        `disk_mb ${diskMb} is smaller than the template's base image`,
      );
    }
    if (/No space left/i.test(stderr))
      throw new WrennError('resource_exhausted', `no space left for ${overlay}`);
    throw new WrennError('internal', `qemu-img create failed: ${stderr || (e as Error).message}`, {
      cause: e,
    });
  }
}

/** The backing file a qcow2 image records (resolved against its dir), if any. */
export async function backingFileOf(image: string): Promise<string | undefined> {
  try {
    const { stdout } = await execFileP(QEMU_IMG, ['info', '--output=json', '-U', image]);
    const info = JSON.parse(stdout) as {
      'full-backing-filename'?: string;
      'backing-filename'?: string;
    };
    return info['full-backing-filename'] ?? info['backing-filename'];
  } catch (e) {
    throw new WrennError('internal', `qemu-img info ${image}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** Flatten an overlay and its base into a new raw image (a template from a sandbox). */
export async function flattenToRaw(overlay: string, out: string): Promise<void> {
  try {
    await execFileP(QEMU_IMG, ['convert', '-q', '-f', 'qcow2', '-O', 'raw', overlay, out]);
  } catch (e) {
    const stderr = String((e as { stderr?: string }).stderr ?? '').trim();
    throw new WrennError('internal', `qemu-img convert failed: ${stderr || (e as Error).message}`, {
      cause: e,
    });
  }
}
