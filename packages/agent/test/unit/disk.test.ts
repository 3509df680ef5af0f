import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSandboxOverlay } from '../../src/disk.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wrenn-disk-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const info = (p: string) =>
  JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', p]).toString()) as {
    'virtual-size': number;
    'backing-filename': string;
    format: string;
  };

describe('createSandboxOverlay (blank overlays reused after the first qemu-img create)', () => {
  it('every overlay of a base is a valid qcow2 on it, byte-identical to the first', async () => {
    const base = join(dir, 'base.ext4');
    await writeFile(base, '');
    await truncate(base, 64 << 20);
    for (const n of ['a', 'b', 'c']) await createSandboxOverlay(base, join(dir, `${n}.qcow2`), 0);
    const a = await readFile(join(dir, 'a.qcow2'));
    for (const n of ['b', 'c'])
      expect((await readFile(join(dir, `${n}.qcow2`))).equals(a)).toBe(true);
    const i = info(join(dir, 'c.qcow2'));
    expect(i.format).toBe('qcow2');
    expect(i['backing-filename']).toBe(base);
    expect(i['virtual-size']).toBe(64 << 20);
    execFileSync('qemu-img', ['check', '-q', join(dir, 'c.qcow2')]);
  });

  it('a size, or a base that changed, gets its own overlay', async () => {
    const base = join(dir, 'grow.ext4');
    await writeFile(base, '');
    await truncate(base, 32 << 20);
    await createSandboxOverlay(base, join(dir, 'g1.qcow2'), 0);
    await createSandboxOverlay(base, join(dir, 'g2.qcow2'), 128);
    expect(info(join(dir, 'g2.qcow2'))['virtual-size']).toBe(128 << 20);
    await truncate(base, 48 << 20);
    await createSandboxOverlay(base, join(dir, 'g3.qcow2'), 0);
    expect(info(join(dir, 'g3.qcow2'))['virtual-size']).toBe(48 << 20);
  });

  it('refuses to overwrite, and a disk smaller than the base is invalid_argument', async () => {
    const base = join(dir, 'small.ext4');
    await writeFile(base, '');
    await truncate(base, 64 << 20);
    await createSandboxOverlay(base, join(dir, 's1.qcow2'), 0);
    await expect(createSandboxOverlay(base, join(dir, 's1.qcow2'), 0)).rejects.toThrow(/EEXIST/);
    await expect(createSandboxOverlay(base, join(dir, 's2.qcow2'), 16)).rejects.toMatchObject({
      code: 'invalid_argument',
      message: expect.stringMatching(/smaller than the template's base image \(64 MiB\)/),
    });
    // A qcow2 base (a template snapshot's disk) is measured by its virtual size.
    await expect(
      createSandboxOverlay(join(dir, 's1.qcow2'), join(dir, 's4.qcow2'), 32, 'qcow2'),
    ).rejects.toMatchObject({ code: 'invalid_argument' });
    await createSandboxOverlay(join(dir, 's1.qcow2'), join(dir, 's5.qcow2'), 64, 'qcow2');
    await expect(
      createSandboxOverlay(join(dir, 'nope'), join(dir, 's3.qcow2'), 0),
    ).rejects.toMatchObject({
      code: 'not_found',
    });
  });
});
