import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WrennError, writeFileAtomic } from '@wrenn/common';
import { sha256 } from './hash.ts';

/** Bump when the layout of an image changes in a way the inputs do not capture. */
export const MANIFEST_FORMAT = 1;
export const MANIFEST_FILE = 'manifest.json';
export const ROOTFS_FILE = 'rootfs.ext4';

export interface FileDigest {
  /** Path relative to WRENN_DIR (kernels) or to the image directory (rootfs). */
  path: string;
  bytes: number;
  sha256: string;
}

/**
 * `images/<team>/<name>/manifest.json`: what went into an image and what came out. It is
 * written last, inside the build's temporary directory, so an image directory with a
 * manifest is always complete.
 */
export interface ImageManifest {
  format: number;
  name: string;
  team: string;
  builtAt: string;
  buildMs: number;
  /** sha256 of canonicalJson(inputs): equal hash → the build is a no-op. */
  inputsHash: string;
  inputs: Record<string, unknown>;
  kernel: {
    release: string;
    package: string;
    version: string;
    cmdline: string;
    vmlinuz: FileDigest;
    initramfs: FileDigest;
  };
  rootfs: FileDigest;
  guest: { envdPort: number; user: string; init: string };
}

/** JSON with object keys sorted at every level: the same inputs always hash the same. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v as object)
        .sort()
        .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

export function inputsHash(inputs: Record<string, unknown>): string {
  return sha256(canonicalJson({ format: MANIFEST_FORMAT, inputs }));
}

/** Parse and check the shape of a manifest; anything else is `undefined` (not an image). */
export function parseManifest(text: string): ImageManifest | undefined {
  let m: any;
  try {
    m = JSON.parse(text);
  } catch {
    return undefined;
  }
  const digest = (d: any) =>
    d && typeof d.path === 'string' && Number.isInteger(d.bytes) && /^[0-9a-f]{64}$/.test(d.sha256);
  const ok =
    m &&
    m.format === MANIFEST_FORMAT &&
    typeof m.name === 'string' &&
    typeof m.team === 'string' &&
    /^[0-9a-f]{64}$/.test(m.inputsHash) &&
    m.inputs &&
    typeof m.inputs === 'object' &&
    m.kernel &&
    typeof m.kernel.release === 'string' &&
    typeof m.kernel.cmdline === 'string' &&
    digest(m.kernel.vmlinuz) &&
    digest(m.kernel.initramfs) &&
    digest(m.rootfs) &&
    m.guest &&
    Number.isInteger(m.guest.envdPort);
  return ok ? (m as ImageManifest) : undefined;
}

export async function readManifest(imageDir: string): Promise<ImageManifest | undefined> {
  const text = await readFile(join(imageDir, MANIFEST_FILE), 'utf8').catch(() => undefined);
  return text === undefined ? undefined : parseManifest(text);
}

export async function writeManifest(imageDir: string, m: ImageManifest): Promise<void> {
  await writeFileAtomic(join(imageDir, MANIFEST_FILE), `${JSON.stringify(m, null, 2)}\n`);
}

/**
 * Why an existing image cannot be reused for `wantHash`, or `undefined` when it can.
 * `sizes` gives the current size of each file the manifest names (undefined = missing),
 * `kernelHashes` the current sha256 of the shared kernel files.
 */
export function staleReason(
  m: ImageManifest | undefined,
  wantHash: string,
  sizes: { rootfs?: number; vmlinuz?: number; initramfs?: number },
  kernelHashes: { vmlinuz?: string; initramfs?: string },
): string | undefined {
  if (!m) return 'no valid manifest';
  if (m.inputsHash !== wantHash) return 'inputs changed';
  if (sizes.rootfs !== m.rootfs.bytes) return `${ROOTFS_FILE} missing or resized`;
  if (
    sizes.vmlinuz !== m.kernel.vmlinuz.bytes ||
    kernelHashes.vmlinuz !== m.kernel.vmlinuz.sha256
  ) {
    return 'kernel file missing or changed';
  }
  if (
    sizes.initramfs !== m.kernel.initramfs.bytes ||
    kernelHashes.initramfs !== m.kernel.initramfs.sha256
  ) {
    return 'initramfs missing or changed';
  }
  return undefined;
}

export function assertImageName(name: string, known: readonly string[]): void {
  if (!known.includes(name)) {
    throw new WrennError(
      'invalid_argument',
      `unknown image '${name}': known images are ${known.join(', ')}`,
    );
  }
}
