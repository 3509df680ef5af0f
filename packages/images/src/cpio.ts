/**
 * A writer for the `newc` cpio format the kernel unpacks as an initramfs. Writing it
 * ourselves needs no root for device nodes (/dev/console) and gives byte-identical output
 * for identical input (fixed inode numbers, owners and times), so it hashes stably.
 */
export type CpioEntry =
  | { path: string; type: 'dir'; mode: number }
  | { path: string; type: 'file'; mode: number; data: Uint8Array }
  | { path: string; type: 'symlink'; target: string }
  | { path: string; type: 'chardev'; mode: number; major: number; minor: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

const hex8 = (n: number) => n.toString(16).padStart(8, '0');
const pad4 = (n: number) => (4 - (n % 4)) % 4;

function record(
  ino: number,
  mode: number,
  data: Uint8Array,
  name: string,
  rdev = [0, 0],
): Buffer[] {
  const nameBytes = Buffer.from(`${name}\0`);
  const header = Buffer.from(
    `070701${[
      ino,
      mode,
      0, // uid
      0, // gid
      1, // nlink
      0, // mtime
      data.length,
      0, // devmajor
      0, // devminor
      rdev[0],
      rdev[1],
      nameBytes.length,
      0, // check
    ]
      .map(hex8)
      .join('')}`,
  );
  return [
    header,
    nameBytes,
    Buffer.alloc(pad4(header.length + nameBytes.length)),
    Buffer.from(data),
    Buffer.alloc(pad4(data.length)),
  ];
}

export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, '');
    if (e.type === 'dir') parts.push(...record(ino++, S_IFDIR | e.mode, new Uint8Array(), name));
    else if (e.type === 'file') parts.push(...record(ino++, S_IFREG | e.mode, e.data, name));
    else if (e.type === 'symlink') {
      parts.push(...record(ino++, S_IFLNK | 0o777, Buffer.from(e.target), name));
    } else {
      parts.push(...record(ino++, S_IFCHR | e.mode, new Uint8Array(), name, [e.major, e.minor]));
    }
  }
  parts.push(...record(0, 0, new Uint8Array(), 'TRAILER!!!'));
  return Buffer.concat(parts);
}
