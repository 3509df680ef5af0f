import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { WrennError } from '@wrenn/common/errors.ts';

/** A Linux account a process or file operation runs as. */
export interface User {
  name: string;
  uid: number;
  gid: number;
  /** Supplementary groups (gids), the primary gid included. */
  groups: number[];
  home: string;
  shell: string;
}

// Every process start looks its user up. /etc/passwd and /etc/group are parsed again only
// when their stat changes (a template may add users after envd started; useradd and usermod
// replace the file, so the inode changes too): a stat costs a tenth of a read and parse.
const parsed = new Map<string, { stamp: string; rows: string[][] }>();

function readLines(path: string): string[][] {
  let stamp: string;
  try {
    const st = statSync(path);
    stamp = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  } catch {
    parsed.delete(path);
    return [];
  }
  const hit = parsed.get(path);
  if (hit?.stamp === stamp) return hit.rows;
  let rows: string[][];
  try {
    rows = readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(':'));
  } catch {
    return [];
  }
  parsed.set(path, { stamp, rows });
  return rows;
}

/**
 * Look a user up by name. `homeRoot` (host mode) moves every home to `<homeRoot>/<name>` so
 * tests never touch the machine's real homes.
 */
export function lookupUser(name: string, homeRoot?: string): User {
  const row = readLines('/etc/passwd').find((f) => f[0] === name);
  if (!row) throw new WrennError('unauthenticated', `invalid user: '${name}' does not exist`);
  const uid = Number(row[2]);
  const gid = Number(row[3]);
  const groups = new Set<number>([gid]);
  for (const g of readLines('/etc/group')) {
    if ((g[3] ?? '').split(',').includes(name)) groups.add(Number(g[2]));
  }
  const home = homeRoot ? join(homeRoot, name) : row[5] || '/';
  return { name, uid, gid, groups: [...groups], home, shell: row[6] || '/bin/sh' };
}

/** uid/gid → name resolver, loaded once per request (ListDir may name thousands of entries). */
export function idNames(): { user(uid: number): string; group(gid: number): string } {
  const users = new Map(readLines('/etc/passwd').map((f) => [Number(f[2]), f[0]!]));
  const groups = new Map(readLines('/etc/group').map((f) => [Number(f[2]), f[0]!]));
  return {
    user: (uid) => users.get(uid) ?? String(uid),
    group: (gid) => groups.get(gid) ?? String(gid),
  };
}
