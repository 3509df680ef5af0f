import { describe, expect, it } from 'vitest';
import { cpioNewc } from './cpio.ts';

/** Minimal newc reader: enough to check what the kernel would unpack. */
function readNewc(buf: Buffer) {
  const out: { name: string; mode: number; rdevMajor: number; rdevMinor: number; data: Buffer }[] =
    [];
  let off = 0;
  const pad = (n: number) => (4 - (n % 4)) % 4;
  for (;;) {
    expect(buf.subarray(off, off + 6).toString()).toBe('070701');
    const field = (i: number) =>
      Number.parseInt(buf.subarray(off + 6 + i * 8, off + 14 + i * 8).toString(), 16);
    const mode = field(1);
    const size = field(6);
    const nameSize = field(11);
    const nameStart = off + 110;
    const name = buf.subarray(nameStart, nameStart + nameSize - 1).toString();
    const dataStart = nameStart + nameSize + pad(110 + nameSize);
    const data = buf.subarray(dataStart, dataStart + size);
    if (name === 'TRAILER!!!') return out;
    out.push({ name, mode, rdevMajor: field(9), rdevMinor: field(10), data });
    off = dataStart + size + pad(size);
  }
}

describe('cpioNewc', () => {
  it('writes dirs, files, symlinks and device nodes a newc reader gets back', () => {
    const archive = cpioNewc([
      { path: 'dev', type: 'dir', mode: 0o755 },
      { path: 'dev/console', type: 'chardev', mode: 0o600, major: 5, minor: 1 },
      { path: '/init', type: 'file', mode: 0o755, data: Buffer.from('#!/bin/sh\necho hi\n') },
      { path: 'bin/sh', type: 'symlink', target: 'busybox' },
    ]);
    const entries = readNewc(archive);
    expect(entries.map((e) => e.name)).toEqual(['dev', 'dev/console', 'init', 'bin/sh']);
    expect(entries[0]!.mode).toBe(0o040755);
    expect(entries[1]).toMatchObject({ mode: 0o020600, rdevMajor: 5, rdevMinor: 1 });
    expect(entries[2]!.mode).toBe(0o100755);
    expect(entries[2]!.data.toString()).toBe('#!/bin/sh\necho hi\n');
    expect(entries[3]!.mode).toBe(0o120777);
    expect(entries[3]!.data.toString()).toBe('busybox');
  });

  it('is byte-identical for identical input (stable hashes)', () => {
    const build = () =>
      cpioNewc([{ path: 'a', type: 'file', mode: 0o644, data: Buffer.from('x') }]);
    expect(build().equals(build())).toBe(true);
  });
});
