import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createOverlay, qcow2BackingFile } from '../../src/disk.ts';
import { defaultCmdline } from '../../src/vmm/qemu/driver.ts';
import { isOurQemu } from '../../src/vmm/qemu/process.ts';
import {
  checkStreamComplete,
  readSnapshotMeta,
  SNAPSHOT_FILES,
  type SnapshotMeta,
  shellQuote,
  writeSnapshotMeta,
} from '../../src/vmm/qemu/snapshot.ts';

const execFileP = promisify(execFile);
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vmm-unit-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A stream shaped like QEMU's: body, then 0x06 + be32 length + VM description JSON. */
function fakeStream(body: Buffer): Buffer {
  const desc = Buffer.from(JSON.stringify({ page_size: 4096, devices: [] }));
  const head = Buffer.alloc(5);
  head[0] = 0x06;
  head.writeUInt32BE(desc.length, 1);
  return Buffer.concat([body, head, desc]);
}

const meta = (over: Partial<SnapshotMeta> = {}): SnapshotMeta => ({
  version: 1,
  mode: 'full',
  vcpus: 1,
  memoryMb: 512,
  accel: 'tcg',
  createdAt: new Date(0).toISOString(),
  stateBytes: 0,
  ...over,
});

describe('state streams', () => {
  it('accepts a stream that ends with its VM description and rejects a truncated one', async () => {
    const stream = fakeStream(Buffer.alloc(100_000, 7));
    await writeFile(join(dir, 'ok'), stream);
    expect(await checkStreamComplete(join(dir, 'ok'))).toBe(stream.length);
    await writeFile(join(dir, 'cut'), stream.subarray(0, stream.length - 10));
    await expect(checkStreamComplete(join(dir, 'cut'))).rejects.toMatchObject({
      code: 'internal',
      message: expect.stringContaining('incomplete'),
    });
  });
});

describe('snapshot meta', () => {
  it('round-trips and checks the state file size against it', async () => {
    const stream = fakeStream(Buffer.alloc(1000));
    await writeFile(join(dir, SNAPSHOT_FILES.state), stream);
    await writeSnapshotMeta(dir, meta({ stateBytes: stream.length }));
    expect(await readSnapshotMeta(dir)).toMatchObject({ mode: 'full', stateBytes: stream.length });

    await writeFile(join(dir, SNAPSHOT_FILES.state), stream.subarray(0, 500));
    await expect(readSnapshotMeta(dir)).rejects.toMatchObject({
      code: 'failed_precondition',
      message: expect.stringContaining(`expected ${stream.length}`),
    });
  });

  it('reports a missing or malformed meta file as such', async () => {
    await expect(readSnapshotMeta(dir)).rejects.toMatchObject({ code: 'not_found' });
    await writeFile(join(dir, SNAPSHOT_FILES.meta), '{"version": 1, "mode": "weird"}');
    await expect(readSnapshotMeta(dir)).rejects.toMatchObject({
      code: 'failed_precondition',
      message: expect.stringContaining('malformed'),
    });
    await writeFile(join(dir, SNAPSHOT_FILES.meta), 'not json');
    await expect(readSnapshotMeta(dir)).rejects.toMatchObject({ code: 'failed_precondition' });
  });
});

describe('disks', () => {
  it('reads the backing file of a qcow2 overlay made by createOverlay', async () => {
    const base = join(dir, 'base.raw');
    await execFileP('qemu-img', ['create', '-q', '-f', 'raw', base, '16M']);
    const mid = join(dir, 'mid.qcow2');
    const top = join(dir, 'top.qcow2');
    await createOverlay(base, 'raw', mid);
    await createOverlay(mid, 'qcow2', top);
    expect(await qcow2BackingFile(top)).toBe(mid);
    expect(await qcow2BackingFile(mid)).toBe(base);
    await expect(qcow2BackingFile(base)).rejects.toMatchObject({ code: 'invalid_argument' });
    await expect(
      createOverlay(join(dir, 'missing.raw'), 'raw', join(dir, 'x.qcow2')),
    ).rejects.toMatchObject({
      code: 'internal',
    });
  });
});

describe('processes and arguments', () => {
  it('never takes a non-QEMU process for a VM, even with the marker in its arguments', async () => {
    expect(await isOurQemu(process.pid, process.argv[1] ?? 'x')).toBe(false);
    expect(await isOurQemu(2 ** 22 + 12345, 'wrenn-x')).toBe(false);
  });

  it('quotes paths for the shell QEMU runs exec: URIs through', async () => {
    const odd = join(dir, "it's a file");
    await execFileP('sh', ['-c', `echo hi > ${shellQuote(odd)}`]);
    const { stdout } = await execFileP('sh', ['-c', `cat ${shellQuote(odd)}`]);
    expect(stdout).toBe('hi\n');
  });

  it('hands a TCG guest the host TSC frequency so boot does not depend on PIT calibration', () => {
    expect(defaultCmdline('tcg')).toMatch(/^console=ttyS0 panic=-1 tsc_early_khz=\d+$/);
    expect(defaultCmdline('kvm')).toBe('console=ttyS0 panic=-1');
  });
});
