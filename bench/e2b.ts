/**
 * Create-to-first-command through the official e2b SDK, next to the same through Wrenn's
 * native API, against a real Wrenn (control plane + agent + QEMU VMs, `base` template).
 * Run: `npm run bench -- e2b` (images must be built in WRENN_DIR, default ~/.wrenn).
 *
 * One sample = create a sandbox from `base` and run `true` in it to completion, timed from
 * before the create call to the command's exit code; the kill afterwards is not timed.
 * SDK and native samples alternate so both see the same host load. Median of 10 each; the
 * ratio sdk/native is what the E2B edge (v2 create + Connect RPC through the gateway) costs
 * over the native path (POST /v1/sandboxes + POST /v1/.../exec).
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { WrennClient } from '@wrenn/sdk';
import { Sandbox } from 'e2b';
import { startWrenn } from '../test/e2b/wrenn.ts';

const SAMPLES = 10;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export async function run(): Promise<Record<string, number>> {
  const w = await startWrenn(process.env.WRENN_DIR ?? join(homedir(), '.wrenn'));
  const opts = { apiKey: w.apiKey, apiUrl: w.url, sandboxUrl: w.url };
  const native = new WrennClient({ apiUrl: w.url, apiKey: w.apiKey });
  const sdkMs: number[] = [];
  const nativeMs: number[] = [];
  try {
    // Warm-up (not counted): the first create of a template builds its snapshot.
    const warm = await Sandbox.create('base', opts);
    await warm.kill();

    for (let i = 0; i < SAMPLES; i++) {
      let t = performance.now();
      const sbx = await Sandbox.create('base', opts);
      const r = await sbx.commands.run('true');
      sdkMs.push(performance.now() - t);
      if (r.exitCode !== 0) throw new Error(`sdk: 'true' exited ${r.exitCode}`);
      await sbx.kill();

      t = performance.now();
      const n = await native.sandboxes.create({ templateId: 'base' });
      const x = await native.sandboxes.exec(n.sandboxId, { cmd: 'true' });
      nativeMs.push(performance.now() - t);
      if (x.exitCode !== 0) throw new Error(`native: 'true' exited ${x.exitCode}`);
      await native.sandboxes.kill(n.sandboxId);
    }
  } finally {
    await w.close();
  }
  const results = {
    e2b_sdk_create_to_first_command_ms: median(sdkMs),
    native_create_to_first_command_ms: median(nativeMs),
    sdk_over_native: median(sdkMs) / median(nativeMs),
  };
  const f = (n: number) => (Math.round(n * 100) / 100).toString();
  console.log(`e2b bench (real Wrenn, base template, median of ${SAMPLES})`);
  for (const [k, v] of Object.entries(results)) console.log(`  ${k.padEnd(40)} ${f(v)}`);
  console.log(`  samples sdk    ${sdkMs.map((v) => Math.round(v)).join(' ')}`);
  console.log(`  samples native ${nativeMs.map((v) => Math.round(v)).join(' ')}`);
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
