import { readFileSync } from 'node:fs';
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

// /etc/passwd and /etc/group are re-read on every lookup (they are tiny): a template may add
// users after envd started, and a restored snapshot must not serve a stale cache.
function readLines(path: string): string[][] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(':'));
  } catch {
    return [];
  }
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
