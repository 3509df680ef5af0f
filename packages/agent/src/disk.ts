import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { WrennError } from '@wrenn/common';

const execFileP = promisify(execFile);
const QEMU_IMG = process.env.WRENN_QEMU_IMG ?? 'qemu-img';

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
