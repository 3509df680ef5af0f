import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, layout } from '@wrenn/common';
import { Manager } from '../../src/manager.ts';
import { OVERLAY, PAUSE_META, type PauseMeta } from '../../src/store.ts';
import type { VmmDriver } from '../../src/vmm/driver.ts';

export const silentLog = createLogger('test', 'silent');

/** A WRENN_DIR with a fake `public/minimal` template (a small raw base) and a kernel. */
export async function fabricateWrennDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wrenn-agent-'));
  const l = layout(dir);
  await mkdir(l.sandboxes, { recursive: true });
  await mkdir(l.kernels, { recursive: true });
  await writeFile(join(l.kernels, 'vmlinuz-1'), 'kernel');
  await writeFile(join(l.kernels, 'initramfs-1'), 'initramfs');
  await mkdir(l.image('public', 'minimal'), { recursive: true });
  await writeFile(join(l.image('public', 'minimal'), 'rootfs.ext4'), Buffer.alloc(1024 * 1024));
  return dir;
}

export async function removeWrennDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}

// Below the agents' default range (20000+) and the ephemeral ports (32768+).
let portCursor = 10_000 + (process.pid % 40) * 200;
/** A fresh port range per manager so tests never collide on slot ports. */
export function nextPortBase(): number {
  portCursor += 70;
  return portCursor;
}

export function newManager(
  dir: string,
  driver: VmmDriver,
  opts: { maxSlots?: number } = {},
): Manager {
  return new Manager({
    dir,
    driver,
    log: silentLog,
    portBase: nextPortBase(),
    maxSlots: opts.maxSlots ?? 16,
    envdReadyTimeoutMs: 10_000,
    drainTimeoutMs: 200,
  });
}

/** A paused sandbox dir as a pause leaves it: driver files, overlay, meta written last. */
export async function fabricatePaused(
  dir: string,
  name: string,
  over: Partial<PauseMeta> & Record<string, unknown> = {},
  opts: { omit?: (keyof PauseMeta)[] } = {},
): Promise<PauseMeta> {
  const live = layout(dir).sandbox(name);
  await mkdir(live, { recursive: true });
  const memory = JSON.stringify({ counter: 7, inits: [] });
  await writeFile(join(live, 'memory'), memory);
  await writeFile(join(live, 'vmstate'), 'fake-vmstate full\n');
  await writeFile(join(live, OVERLAY), 'overlay-bytes');
  const meta: PauseMeta = {
    version: 1,
    sandbox_id: name,
    team_id: 'team1',
    template_id: 'minimal',
    slot_index: 1,
    created_at: new Date('2026-01-01T00:00:00Z').toISOString(),
    paused_at: new Date('2026-01-01T00:01:00Z').toISOString(),
    vcpus: 1,
    memory_mb: 512,
    disk_mb: 0,
    timeout_ms: 0,
    timeout_action: 'kill',
    remaining_ms: 0,
    metadata: {},
    env_vars: {},
    envd_access_token: '',
    base_image: join(layout(dir).image('public', 'minimal'), 'rootfs.ext4'),
    files: [
      { name: 'vmstate', size: 'fake-vmstate full\n'.length },
      { name: 'memory', size: memory.length },
      { name: OVERLAY, size: 'overlay-bytes'.length },
    ],
    ...over,
  } as PauseMeta;
  const out: Record<string, unknown> = { ...meta };
  for (const k of opts.omit ?? []) delete out[k];
  await writeFile(join(live, PAUSE_META), JSON.stringify(out));
  return meta;
}
