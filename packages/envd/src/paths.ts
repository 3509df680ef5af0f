import type { Stats } from 'node:fs';
import { chown, lstat, mkdir } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { WrennError } from '@wrenn/common/errors.ts';
import { fromErrno } from './errors.ts';
import type { User } from './users.ts';

/** Absolute form of a client path: `~` and relative paths resolve against the user's home. */
export function resolvePath(user: User, path: string, workdir?: string): string {
  if (path === '' && !workdir) return user.home;
  if (path === '~' || path.startsWith('~/')) return resolve(user.home, path.slice(2));
  if (isAbsolute(path)) return resolve(path);
  return resolve(workdir ?? user.home, path);
}

export type Access = 'r' | 'w' | 'x';
const BITS: Record<Access, number> = { r: 4, w: 2, x: 1 };

/** access(2) for another user: envd runs as root, so it must check on the user's behalf. */
export function permits(st: Stats, user: User, want: Access[]): boolean {
  if (user.uid === 0) return true;
  const shift = st.uid === user.uid ? 6 : user.groups.includes(st.gid) ? 3 : 0;
  const have = (st.mode >> shift) & 7;
  return want.every((w) => (have & BITS[w]) !== 0);
}

/**
 * Throws permission_denied unless `user` may search every ancestor of `path` and has `want`
 * on `path` itself (when it exists) and `parentWant` on its parent. Missing paths are left
 * for the real operation to report as not_found.
 */
export async function checkAccess(
  user: User,
  path: string,
  want: Access[],
  parentWant: Access[] = [],
): Promise<void> {
  if (user.uid === 0) return;
  const parts = path.split('/').filter(Boolean);
  let cur = '/';
  for (let i = 0; i < parts.length; i++) {
    const st = await statOrUndefined(cur);
    if (!st) return;
    const isParent = i === parts.length - 1;
    const need: Access[] = isParent ? ['x', ...parentWant] : ['x'];
    if (st.isDirectory() && !permits(st, user, need)) {
      throw new WrennError('permission_denied', `${path}: permission denied for user ${user.name}`);
    }
    cur = join(cur, parts[i]!);
  }
  const st = await statOrUndefined(path);
  if (st && want.length > 0 && !permits(st, user, want)) {
    throw new WrennError('permission_denied', `${path}: permission denied for user ${user.name}`);
  }
}

async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch {
    return undefined;
  }
}

/**
 * mkdir -p where every directory created is owned by `user` (envd is root; files it
 * creates for a user must belong to that user). Returns whether the leaf was created.
 */
export async function mkdirAs(user: User, dir: string): Promise<boolean> {
  const missing: string[] = [];
  let cur = dir;
  for (;;) {
    const st = await statOrUndefined(cur);
    if (st) {
      if (!st.isDirectory() && !(st.isSymbolicLink() && missing.length > 0)) {
        if (missing.length === 0) return false;
        throw new WrennError('invalid_argument', `${cur}: not a directory`);
      }
      break;
    }
    missing.push(cur);
    const up = dirname(cur);
    if (up === cur) break;
    cur = up;
  }
  if (missing.length === 0) return false;
  await checkAccess(user, missing[missing.length - 1]!, [], ['w', 'x']);
  for (const d of missing.reverse()) {
    try {
      await mkdir(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw fromErrno(e, d);
    }
    await chown(d, user.uid, user.gid);
  }
  return true;
}
