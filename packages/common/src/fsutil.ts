import { open, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** fsync a file or directory by path. */
export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Write a file so a reader sees the old content or the new one, never a torn one. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644) {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  await writeFile(tmp, data, { mode });
  await fsyncPath(tmp);
  await rename(tmp, path);
  await fsyncPath(dirname(path));
}
