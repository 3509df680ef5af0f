import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HostEnvd, startHostEnvd } from '../helpers.ts';

const MiB = 1 << 20;
let envd: HostEnvd;

beforeAll(async () => {
  envd = await startHostEnvd();
});
afterAll(async () => {
  await envd?.stop();
});

/** A body of `size` bytes produced on the fly, so the test process holds none of it either. */
function generated(size: number): ReadableStream<Uint8Array> {
  const block = new Uint8Array(MiB).map((_, i) => i % 251);
  let sent = 0;
  return new ReadableStream({
    pull(c) {
      if (sent >= size) return c.close();
      c.enqueue(block);
      sent += block.length;
    },
  });
}

async function upload(path: string, size: number) {
  const r = await fetch(`${envd.url}/files?path=${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
    body: generated(size),
    duplex: 'half',
  } as RequestInit);
  expect(r.status).toBe(200);
}

async function download(path: string): Promise<number> {
  const r = await fetch(`${envd.url}/files?path=${path}`);
  expect(r.status).toBe(200);
  let n = 0;
  for await (const c of r.body as unknown as AsyncIterable<Uint8Array>) n += c.length;
  return n;
}

async function peakRss(): Promise<number> {
  const status = await readFile(`/proc/${envd.pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

describe('memory stays bounded under large transfers', () => {
  it('uploading and downloading 1 GiB grows envd peak RSS by less than 64 MiB', async () => {
    // Warm up first so lazily allocated buffers and JIT code are in the baseline.
    await upload('warm.bin', 32 * MiB);
    expect(await download('warm.bin')).toBe(32 * MiB);
    const before = await envd.rss();
    await writeFile(`/proc/${envd.pid}/clear_refs`, '5'); // reset VmHWM to the current RSS

    await upload('big.bin', 1024 * MiB);
    expect(await download('big.bin')).toBe(1024 * MiB);

    const growth = (await peakRss()) - before;
    console.log(
      `envd RSS before ${(before / MiB).toFixed(1)} MiB, peak growth ${(growth / MiB).toFixed(1)} MiB`,
    );
    expect(growth).toBeLessThan(64 * MiB);
  }, 600_000); // a timeout, not an assertion: the shared cores may be busy
});
