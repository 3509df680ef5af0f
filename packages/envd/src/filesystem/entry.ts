import type { Stats } from 'node:fs';
import { lstat, readlink, realpath } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { TimestampSchema } from '@bufbuild/protobuf/wkt';
import { filesystemv1 } from '@wrenn/proto';
import { fromErrno } from '../errors.ts';
import type { idNames } from '../users.ts';
import type { MetadataStore } from './metadata.ts';

const { FileType } = filesystemv1;

export interface EntryJson {
  name: string;
  type: 'file' | 'dir' | 'symlink';
  path: string;
}

export function fileTypeOf(st: Stats): filesystemv1.FileType {
  if (st.isSymbolicLink()) return FileType.SYMLINK;
  if (st.isDirectory()) return FileType.DIRECTORY;
  return FileType.FILE;
}

/** `ls -l` style permission string, e.g. `drwxr-xr-x`. */
export function permissionString(st: Stats): string {
  const t = st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'L' : '-';
  const rwx = (bits: number) =>
    `${bits & 4 ? 'r' : '-'}${bits & 2 ? 'w' : '-'}${bits & 1 ? 'x' : '-'}`;
  return t + rwx((st.mode >> 6) & 7) + rwx((st.mode >> 3) & 7) + rwx(st.mode & 7);
}

/** EntryInfo for a path (lstat: a symlink is described, with its resolved target). */
export async function entryInfo(
  path: string,
  names: ReturnType<typeof idNames>,
  metadata: MetadataStore,
  st?: Stats,
): Promise<filesystemv1.EntryInfo> {
  try {
    st ??= await lstat(path);
  } catch (e) {
    throw fromErrno(e, path);
  }
  let symlinkTarget: string | undefined;
  if (st.isSymbolicLink()) {
    symlinkTarget = await realpath(path).catch(async () =>
      resolve(dirname(path), await readlink(path)),
    );
  }
  return {
    $typeName: 'filesystem.EntryInfo',
    name: basename(path) || '/',
    type: fileTypeOf(st),
    path,
    size: BigInt(st.size),
    mode: st.mode & 0o7777,
    permissions: permissionString(st),
    owner: names.user(st.uid),
    group: names.group(st.gid),
    modifiedTime: timestampOf(st.mtimeMs),
    symlinkTarget,
    metadata: metadata.get(st),
  };
}

/** mtimeMs carries sub-millisecond fractions; Timestamp nanos must be a whole number. */
function timestampOf(ms: number) {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.min(999_999_999, Math.round((ms - seconds * 1000) * 1e6));
  return create(TimestampSchema, { seconds: BigInt(seconds), nanos });
}
