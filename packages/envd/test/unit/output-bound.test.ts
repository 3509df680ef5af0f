import type { Sandbox } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, type HostEnvd, sdk, startHostEnvd } from '../helpers.ts';

const BUFFER = 4096;
let envd: HostEnvd;
let sbx: Sandbox;

beforeAll(async () => {
  envd = await startHostEnvd(['--output-buffer', String(BUFFER)]);
  sbx = sdk(envd);
});
afterAll(async () => {
  await envd?.stop();
});

describe('the output a late Connect replays is bounded', () => {
  it('keeps only the most recent output (≤ buffer + one chunk) and still delivers the end', async () => {
    const h = await sbx.commands.run('seq 1 200000', { background: true }); // ~1.3 MB of output
    await h.disconnect();
    await eventually(async () => !(await sbx.commands.list()).some((p) => p.pid === h.pid));
    const late = await sbx.commands.connect(h.pid);
    const r = await late.wait();
    expect(r.exitCode).toBe(0);
    expect(r.stdout.endsWith('199999\n200000\n')).toBe(true);
    expect(r.stdout.length).toBeLessThanOrEqual(BUFFER + 65536);
    expect(r.stdout.length).toBeGreaterThan(0);
    expect(r.stdout.startsWith('1\n2\n')).toBe(false); // the head was dropped
  });
});
