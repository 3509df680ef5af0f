import { readFile, statfs } from 'node:fs/promises';
import { cpus, freemem, totalmem } from 'node:os';

let lastCpu: { idle: number; total: number } | undefined;

function cpuTimes(): { idle: number; total: number } {
  let idle = 0;
  let total = 0;
  for (const c of cpus()) {
    idle += c.times.idle;
    total += c.times.idle + c.times.user + c.times.nice + c.times.sys + c.times.irq;
  }
  return { idle, total };
}

/** CPU busy % since the previous call (or over a 100 ms sample on the first). */
async function cpuUsedPct(): Promise<number> {
  if (!lastCpu) {
    lastCpu = cpuTimes();
    await new Promise((r) => setTimeout(r, 100));
  }
  const now = cpuTimes();
  const dTotal = now.total - lastCpu.total;
  const dIdle = now.idle - lastCpu.idle;
  lastCpu = now;
  return dTotal > 0 ? Math.round(((dTotal - dIdle) / dTotal) * 10000) / 100 : 0;
}

/** MemAvailable counts reclaimable cache as free, like `free` does. */
async function memAvailable(): Promise<number> {
  const info = await readFile('/proc/meminfo', 'utf8').catch(() => '');
  const m = /MemAvailable:\s+(\d+) kB/.exec(info);
  return m ? Number(m[1]) * 1024 : freemem();
}

/** GET /metrics, in E2B envd's JSON shape. */
export async function metrics() {
  const memTotal = totalmem();
  const memUsed = memTotal - (await memAvailable());
  const fs = await statfs('/');
  return {
    ts: Math.floor(Date.now() / 1000),
    cpu_count: cpus().length,
    cpu_used_pct: await cpuUsedPct(),
    mem_total: memTotal,
    mem_used: memUsed,
    mem_total_mib: Math.floor(memTotal / (1 << 20)),
    mem_used_mib: Math.floor(memUsed / (1 << 20)),
    disk_total: fs.blocks * fs.bsize,
    disk_used: (fs.blocks - fs.bfree) * fs.bsize,
  };
}
