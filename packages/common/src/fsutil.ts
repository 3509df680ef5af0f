import { open, rename, stat } from 'node:fs/promises';
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

/**
 * Write a file so a reader sees the old content or the new one, never a torn one. Durable
 * (fsynced, file and dir) unless `durable: false`: then a process crash still never tears
 * it, but a power cut may lose it — for records whose loss recovery already handles.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
  opts: { durable?: boolean } = {},
) {
  const durable = opts.durable ?? true;
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    if (durable) await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  if (durable) await fsyncPath(dirname(path));
}

/** Whether anything (file, dir, socket, …) is at `path`. */
export async function pathExists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
