import { readdir, readFile } from 'node:fs/promises';
import { errorMessage, layout } from '@wrenn/common';
import type { Manager } from '../manager.ts';

/**
 * Startup step 2b: end VMM processes that belong to this WRENN_DIR but to no adopted
 * sandbox — a crash between `start-vm` and `write-running-state`, a paused VM whose
 * pause finished on disk, or a template snapshot build. They are found by their command line naming a path under this
 * agent's `sandboxes/` or `tmp/` dir, and killed by pid.
 */
export async function killOrphanVms(m: Manager): Promise<number[]> {
  const adopted = new Set<number>();
  for (const sb of m.boxes.values()) if (sb.vm) adopted.add(sb.vm.pid);
  const prefixes = [`${layout(m.dir).sandboxes}/`, `${layout(m.dir).tmp}/`];
  const killed: number[] = [];
  for (const pid of await listPids()) {
    if (pid === process.pid || adopted.has(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline) continue;
    const args = cmdline.split('\0');
    const images = `${layout(m.dir).images}/`;
    const ours =
      args.some((a) => prefixes.some((p) => a.includes(p))) ||
      // A template snapshot build the crash interrupted (its RAM file is in a staging dir).
      args.some((a) => a.includes(images) && a.includes('.staging-'));
    if (!ours) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
      m.log.warn({ event: 'orphans:killed', pid, cmd: args[0] }, 'killed an orphan VM process');
    } catch (e) {
      m.log.warn(
        { event: 'orphans:kill-failed', pid, error: errorMessage(e) },
        'could not kill orphan',
      );
    }
  }
  await Promise.all(killed.map((pid) => waitGone(pid)));
  return killed;
}

async function listPids(): Promise<number[]> {
  const names = await readdir('/proc').catch(() => [] as string[]);
  return names.filter((n) => /^\d+$/.test(n)).map(Number);
}

async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    if (/^\d+ \(.*\) Z/.test(stat)) return; // a zombie is gone for our purposes
    await new Promise((r) => setTimeout(r, 10));
  }
}
