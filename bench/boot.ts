import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { QEMU_BINARY, qemuArgs } from '@wrenn/agent/vmm/qemu/args.ts';
import { layout } from '@wrenn/common';
import { buildImage, DEFAULT_CMDLINE, guestCmdline, listImages } from '@wrenn/images';
import { cpioNewc } from '@wrenn/images/cpio.ts';
import { bootImage } from '../test/helpers/vm.ts';

/**
 * Boot benchmark of the `minimal` image under TCG (what CI has):
 *   - QEMU start → guest init's first console line, and → envd /health 204 (5 cold boots);
 *   - floor: QEMU start → the first line of a trivial initramfs on the same kernel, so
 *     the ratios show what the image adds on top of QEMU + kernel;
 *   - image build time: cold (empty WRENN_DIR, kernel .deb cached) vs cached (no-op).
 * Targets under TCG on a 2-core box: init ≤ 1.5 s, ready ≤ 3.5 s.
 */
const BOOTS = 5;
const BUILDS_COLD = 3;
const BUILDS_CACHED = 5;
const execFileP = promisify(execFile);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** QEMU start → first line of an initramfs whose /init only prints and ends the VM. */
/**
 * CPU time (user + system, all threads) a process has used, in ms. On a shared 2-core box
 * wall time mostly measures the neighbours; a one-vCPU TCG guest's CPU time measures the
 * emulation work itself, so both are reported.
 */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of /proc/<pid>/stat (clock ticks of 1/100 s).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

export interface Timing {
  wallMs: number;
  cpuMs: number;
}

export async function floorBoot(kernel: string, work: string): Promise<Timing> {
  const initrd = join(work, 'floor.cpio.gz');
  const busybox = (await execFileP('sh', ['-c', 'command -v busybox'])).stdout.trim();
  await writeFile(
    initrd,
    gzipSync(
      cpioNewc([
        { path: 'bin', type: 'dir', mode: 0o755 },
        { path: 'dev', type: 'dir', mode: 0o755 },
        { path: 'dev/console', type: 'chardev', mode: 0o600, major: 5, minor: 1 },
        { path: 'bin/busybox', type: 'file', mode: 0o755, data: await readFile(busybox) },
        {
          path: 'init',
          type: 'file',
          mode: 0o755,
          data: Buffer.from('#!/bin/busybox sh\necho floor-init\n/bin/busybox reboot -f\n'),
        },
      ]),
    ),
  );
  const args = qemuArgs({
    name: 'wrenn-bench-floor',
    accel: 'tcg',
    vcpus: 1,
    memoryMb: 512,
    kernel,
    initrd,
    // The images' own kernel parameters: the floor is this kernel as the images boot it.
    cmdline: guestCmdline(DEFAULT_CMDLINE, 'tcg'),
    console: { kind: 'stdio' },
  });
  const started = performance.now();
  const child = spawn(QEMU_BINARY, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  return new Promise((done, fail) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`floor VM printed nothing in 120 s: ${out}`));
    }, 120_000);
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('floor-init')) {
        clearTimeout(timer);
        const at = { wallMs: performance.now() - started, cpuMs: cpuMs(child.pid!) };
        child.kill('SIGKILL');
        done(at);
      }
    });
  });
}

export async function run(): Promise<Record<string, number>> {
  const dir = resolve(
    process.env.WRENN_BENCH_DIR ?? join(import.meta.dirname, '..', '.cache', 'bench-wrenn'),
  );
  const work = await mkdtemp(join(tmpdir(), 'wrenn-bench-boot-'));
  try {
    // Build times. The first build also fills the kernel cache every later build reuses.
    await buildImage('minimal', { dir });
    const cold: number[] = [];
    for (let i = 0; i < BUILDS_COLD; i++) {
      const fresh = join(work, `cold-${i}`);
      const t = performance.now();
      const r = await buildImage('minimal', { dir: fresh, cacheDir: layout(dir).cache });
      cold.push(performance.now() - t);
      if (r.status !== 'built') throw new Error('a cold build reported cached');
      await rm(fresh, { recursive: true, force: true });
    }
    const cached: number[] = [];
    for (let i = 0; i < BUILDS_CACHED; i++) {
      const t = performance.now();
      const r = await buildImage('minimal', { dir });
      cached.push(performance.now() - t);
      if (r.status !== 'cached') throw new Error('an unchanged rebuild was not a no-op');
    }

    const image = (await listImages(dir)).find((i) => i.name === 'minimal')!;
    const kernel = join(dir, image.manifest!.kernel.vmlinuz.path);
    const floors: number[] = [];
    const inits: number[] = [];
    const readies: number[] = [];
    const floorsCpu: number[] = [];
    const initsCpu: number[] = [];
    const readiesCpu: number[] = [];
    for (let i = 0; i < BOOTS; i++) {
      const f = await floorBoot(kernel, work);
      floors.push(f.wallMs);
      floorsCpu.push(f.cpuMs);
      const vm = await bootImage({ wrennDir: dir, image: 'minimal', accel: 'tcg', noWait: true });
      try {
        // CPU time is sampled as soon as the event is seen (it keeps growing after).
        const initSeen = vm
          .waitForConsole(/wrenn-init: started/)
          .then((at) => ({ at, cpu: cpuMs(vm.pid) }));
        const readyAt = await vm.waitReady();
        readiesCpu.push(cpuMs(vm.pid));
        const init = await initSeen;
        inits.push(init.at);
        initsCpu.push(init.cpu);
        readies.push(readyAt);
      } finally {
        await vm.kill();
      }
    }

    const floor = median(floors);
    const floorCpu = median(floorsCpu);
    const rows = [
      ['floor: QEMU start → trivial initramfs /init', floors, floor],
      ['minimal: QEMU start → guest init', inits, floor],
      ['minimal: QEMU start → envd ready', readies, floor],
      ['floor, QEMU CPU time', floorsCpu, floorCpu],
      ['minimal → guest init, QEMU CPU time', initsCpu, floorCpu],
      ['minimal → envd ready, QEMU CPU time', readiesCpu, floorCpu],
      ['image build, cold (kernel .deb cached)', cold, undefined],
      ['image build, cached (no-op)', cached, undefined],
    ] as const;
    for (const [label, xs, base] of rows) {
      const m = median(xs);
      const ratio = base ? `  ×${(m / base).toFixed(2)} floor` : '';
      process.stdout.write(
        `${label.padEnd(46)} median ${sec(m)}  (n=${xs.length}: ${xs.map((x) => (x / 1000).toFixed(2)).join(', ')})${ratio}\n`,
      );
    }
    const coldM = median(cold);
    const cachedM = median(cached);
    process.stdout.write(`cached build / cold build: ${(cachedM / coldM).toFixed(3)}\n`);
    process.stdout.write(
      `targets under TCG: init ≤ 1.5 s ${median(inits) <= 1500 ? 'met' : 'NOT met'}, ready ≤ 3.5 s ${median(readies) <= 3500 ? 'met' : 'NOT met'}\n`,
    );
    process.stdout.write(
      `load average (1 min) at the end: ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores\n`,
    );
    return {
      floorCpuMs: Math.round(floorCpu),
      initCpuMs: Math.round(median(initsCpu)),
      readyCpuMs: Math.round(median(readiesCpu)),
      floorMs: Math.round(floor),
      initMs: Math.round(median(inits)),
      readyMs: Math.round(median(readies)),
      initFloorRatio: +(median(inits) / floor).toFixed(2),
      readyFloorRatio: +(median(readies) / floor).toFixed(2),
      coldBuildMs: Math.round(coldM),
      cachedBuildMs: Math.round(cachedM),
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
