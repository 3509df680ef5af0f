import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256 of a file's bytes, streamed; `onBytes` reports progress. */
export async function sha256File(path: string, onBytes?: (n: number) => void): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    h.update(chunk as Buffer);
    onBytes?.((chunk as Buffer).length);
  }
  return h.digest('hex');
}

const memo = new Map<string, string>();

/**
 * sha256File for big inputs hashed on every build (the ~100 MB node binary): remembered
 * in this process per path + size + mtime + inode, so building both images hashes it once.
 */
export async function sha256FileMemo(path: string): Promise<string> {
  const st = await stat(path);
  const key = `${path}\0${st.size}\0${st.mtimeMs}\0${st.ino}`;
  const hit = memo.get(key);
  if (hit) return hit;
  const h = await sha256File(path);
  memo.set(key, h);
  return h;
}
