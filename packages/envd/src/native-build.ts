import { createHash } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileC } from '@wrenn/common/cc.ts';
import { CLOCK_ADDON } from './clock.ts';

const source = join(dirname(fileURLToPath(import.meta.url)), '..', 'native', 'wrenn_clock.c');

/** Node's own headers, installed beside the binary that runs the build (and ships in images). */
function nodeIncludeDir(): string {
  return join(dirname(dirname(process.execPath)), 'include', 'node');
}

/**
 * Compile the clock addon into `outDir` with the machine's C compiler against this Node's
 * headers. Plain C + Node-API: it links only libc, which the guest runtime already carries.
 */
export async function buildClockAddon(outDir: string): Promise<string> {
  const include = nodeIncludeDir();
  await access(join(include, 'node_api.h')).catch(() => {
    throw new Error(
      `Node's headers are missing (${include}/node_api.h): install them with Node (Debian: libnode-dev)`,
    );
  });
  const out = join(outDir, CLOCK_ADDON);
  await compileC(source, out, ['-O2', '-shared', '-fPIC', '-Wall', `-I${include}`]);
  return CLOCK_ADDON;
}

/** What the addon is built from, for the image manifest: source bytes and header dir. */
export async function clockAddonHash(): Promise<string> {
  return createHash('sha256')
    .update(await readFile(source))
    .update(nodeIncludeDir())
    .digest('hex');
}
