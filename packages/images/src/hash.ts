import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';

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

/**
 * sha256 of a directory tree: every entry's relative path, type, mode and content (or
 * symlink target), in sorted order. Owners and times are left out on purpose: they change
 * between checkouts without changing what the image gets.
 */
export async function sha256Tree(root: string): Promise<string> {
  const h = createHash('sha256');
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(root, rel))).sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(root, r));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isDirectory()) {
        h.update(`d ${r} ${mode}\n`);
        await walk(r);
      } else if (st.isSymbolicLink()) {
        h.update(`l ${r} ${await readlink(join(root, r))}\n`);
      } else {
        h.update(`f ${r} ${mode} ${await sha256File(join(root, r))}\n`);
      }
    }
  };
  await walk('');
  return h.digest('hex');
}
