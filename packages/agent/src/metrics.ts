import { readFile, stat } from 'node:fs/promises';
import type { Manager } from './manager.ts';
import { sandboxPaths } from './store.ts';

export interface MetricPoint {
  timestampMs: number;
  /** Of all the sandbox's vCPUs, 0..100. */
  cpuUsedPct: number;
  cpuCount: number;
  memUsedBytes: number;
  memTotalBytes: number;
  diskUsedBytes: number;
  diskTotalBytes: number;
}

/** A fixed-size ring of the newest points. */
export class Ring<T> {
  private readonly buf: T[] = [];
  private start = 0;
  constructor(readonly capacity: number) {}

  push(v: T): void {
    if (this.buf.length < this.capacity) this.buf.push(v);
    else {
      this.buf[this.start] = v;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  toArray(): T[] {
    return [...this.buf.slice(this.start), ...this.buf.slice(0, this.start)];
  }

  get size(): number {
    return this.buf.length;
  }
}

const CLK_TCK = 100;
const PAGE = 4096;

/**
 * Samples CPU and memory of each running sandbox's VMM process (`/proc/<pid>`) into a
 * ring buffer per sandbox. CPU is the process's utime+stime delta over wall time, as a
 * share of the sandbox's vCPUs; memory is the process's resident set.
 */
export class MetricsSampler {
  readonly rings = new Map<string, Ring<MetricPoint>>();
  private readonly last = new Map<string, { ticks: number; at: number; pid: number }>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly m: Manager,
    readonly intervalMs = 5000,
    readonly capacity = 720,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async sample(now = Date.now()): Promise<void> {
    for (const [id] of this.rings) if (!this.m.boxes.has(id)) this.rings.delete(id);
    for (const sb of this.m.boxes.values()) {
      if (sb.status !== 'running' || !sb.vm) {
        this.last.delete(sb.id);
        continue;
      }
      const pid = sb.vm.pid;
      const proc = await readProc(pid);
      if (!proc) continue;
      const prev = this.last.get(sb.id);
      this.last.set(sb.id, { ticks: proc.ticks, at: now, pid });
      const cpu =
        prev && prev.pid === pid && now > prev.at
          ? Math.min(
              100,
              (((proc.ticks - prev.ticks) / CLK_TCK) * 1000 * 100) / ((now - prev.at) * sb.vcpus),
            )
          : 0;
      const overlay = await stat(sandboxPaths(this.m.dir, sb.id).overlay).catch(() => undefined);
      let ring = this.rings.get(sb.id);
      if (!ring) {
        ring = new Ring(this.capacity);
        this.rings.set(sb.id, ring);
      }
      ring.push({
        timestampMs: now,
        cpuUsedPct: Math.max(0, cpu),
        cpuCount: sb.vcpus,
        memUsedBytes: Math.min(proc.rssBytes, sb.memoryMb * 1024 * 1024),
        memTotalBytes: sb.memoryMb * 1024 * 1024,
        diskUsedBytes: overlay ? overlay.blocks * 512 : 0,
        diskTotalBytes: sb.diskMb ? sb.diskMb * 1024 * 1024 : (overlay?.size ?? 0),
      });
    }
  }

  points(id: string, sinceMs = 0): MetricPoint[] {
    return (this.rings.get(id)?.toArray() ?? []).filter((p) => p.timestampMs >= sinceMs);
  }
}

async function readProc(pid: number): Promise<{ ticks: number; rssBytes: number } | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const statm = await readFile(`/proc/${pid}/statm`, 'utf8').catch(() => '');
  if (!stat || !statm) return undefined;
  // Fields after the `(comm)`; utime and stime are fields 14 and 15 overall.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(rest[11]) + Number(rest[12]);
  const rssBytes = Number(statm.split(' ')[1]) * PAGE;
  return { ticks, rssBytes };
}
