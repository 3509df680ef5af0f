import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileC, layout, pathExists, WrennError } from '@wrenn/common';

/** The C source of `wrenn-stream`, the pipe ⇄ file mover of migration streams. */
export const STREAM_TOOL_SOURCE = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'native',
  'wrenn_stream.c',
);

/** Where a WRENN_DIR keeps its `wrenn-stream` builds. */
export const streamToolDir = (wrennDir: string) => join(layout(wrennDir).cache, 'bin');

const built = new Map<string, Promise<string>>();

/**
 * The path of `wrenn-stream` in `binDir`, compiled on first use (a few hundred ms) and
 * named after its source's hash, so a changed source is rebuilt and agents sharing a dir
 * share the binary. The compiler writes a private name that is renamed in: a concurrent
 * build or a crash never leaves a half-written binary under the final name. A binary
 * deleted under a running agent is built again.
 */
export async function streamTool(binDir: string): Promise<string> {
  const path = await once(binDir);
  if (await pathExists(path)) return path;
  built.delete(binDir);
  return once(binDir);
}

function once(binDir: string): Promise<string> {
  let p = built.get(binDir);
  if (!p) {
    p = build(binDir);
    built.set(binDir, p);
    p.catch(() => built.delete(binDir)); // a later call may find the compiler installed
  }
  return p;
}

async function build(binDir: string): Promise<string> {
  const hash = createHash('sha256')
    .update(await readFile(STREAM_TOOL_SOURCE))
    .digest('hex')
    .slice(0, 16);
  const out = join(binDir, `wrenn-stream-${hash}`);
  if (await pathExists(out)) return out;
  await mkdir(binDir, { recursive: true, mode: 0o700 });
  const tmp = `${out}.tmp-${process.pid}-${Date.now()}`;
  try {
    await compileC(STREAM_TOOL_SOURCE, tmp, ['-O2', '-Wall', '-Wextra']);
    await rename(tmp, out);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new WrennError('internal', `building wrenn-stream: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return out;
}
