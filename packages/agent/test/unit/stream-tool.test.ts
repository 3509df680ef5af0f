import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streamTool } from '../../src/vmm/qemu/stream-tool.ts';

let dir: string;
let tool: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wrenn-stream-'));
  tool = await streamTool(join(dir, 'bin'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Run the tool with `input` on a pipe as stdin; its exit code, stdout and stderr. */
function run(args: string[], input?: Buffer) {
  return new Promise<{ code: number | null; out: Buffer; err: string }>((resolve, reject) => {
    const child = spawn(tool, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.stdin.on('error', () => {}); // a tool that exits early closes its end
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out: Buffer.concat(out), err }));
    child.stdin.end(input);
  });
}

describe('wrenn-stream (the agent’s migration-stream mover)', () => {
  it('is compiled once per source into the bin dir, and reused', async () => {
    const names = await readdir(join(dir, 'bin'));
    expect(names).toEqual([expect.stringMatching(/^wrenn-stream-[0-9a-f]{16}$/)]);
    expect(await streamTool(join(dir, 'bin'))).toBe(tool);
  });

  it('is built again when the binary was deleted under a running agent', async () => {
    const other = join(dir, 'bin2');
    const first = await streamTool(other);
    await rm(first);
    expect(await streamTool(other)).toBe(first);
    expect((await stat(first)).mode & 0o100).toBe(0o100);
  });

  it('save: a stream of several pipe-fulls lands byte for byte, private to its owner', async () => {
    const data = randomBytes(5 * 1024 * 1024 + 123);
    const file = join(dir, 'saved');
    const r = await run(['save', file], data);
    expect(r).toMatchObject({ code: 0, err: '' });
    expect((await readFile(file)).equals(data)).toBe(true);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('save replaces what the file held before', async () => {
    const file = join(dir, 'replaced');
    await writeFile(file, randomBytes(1 << 20));
    expect((await run(['save', file], Buffer.from('short'))).code).toBe(0);
    expect(await readFile(file, 'utf8')).toBe('short');
  });

  it('load: the file comes out on stdout unchanged', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 7);
    const file = join(dir, 'to-load');
    await writeFile(file, data);
    const r = await run(['load', file]);
    expect(r.code).toBe(0);
    expect(r.out.equals(data)).toBe(true);
  });

  it('a full disk fails the save with the system’s words (and the copy falls back from splice)', async () => {
    // /dev/full refuses every write with ENOSPC; splice into a device is EINVAL first.
    const r = await run(['save', '/dev/full'], randomBytes(1 << 16));
    expect(r.code).toBe(1);
    expect(r.err).toBe('wrenn-stream: /dev/full: write: No space left on device\n');
  });

  it('an unwritable or unreadable path is exit 1 naming it; bad usage is exit 2', async () => {
    const missing = join(dir, 'no-such-dir', 'f');
    const save = await run(['save', missing], Buffer.from('x'));
    expect(save).toMatchObject({
      code: 1,
      err: `wrenn-stream: ${missing}: No such file or directory\n`,
    });
    const load = await run(['load', missing]);
    expect(load).toMatchObject({
      code: 1,
      err: `wrenn-stream: ${missing}: No such file or directory\n`,
    });
    const usage = await run(['copy', missing]);
    expect(usage.code).toBe(2);
    expect(usage.err).toMatch(/^usage: wrenn-stream save FILE/);
  });
});
