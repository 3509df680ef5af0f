/**
 * `npm run bench -- agent`: the host agent's lifecycle through its real RPC API, each figure
 * next to its raw-QEMU floor measured in the same run on the same template files
 * (bench/vmm-floor.ts):
 *
 *   create   Create RPC (overlay + clone of the template snapshot + envd ready + /init)
 *            vs the raw clone floor (QEMU mapping the template RAM → envd /health)
 *   pause    Pause RPC (drain, stop, snapshot to staging, fsync, swap, stop VM)
 *            vs raw `stop` + migrate-to-file (`cat`), and for context vs the same + fsync
 *            of the file (what durability costs with `cat`) and vs raw QEMU migrating
 *            through the agent's own durable copier (`wrenn-stream save`)
 *   resume   Resume RPC (restore into a new QEMU + envd ready + /init)
 *            vs raw restore from that file → envd /health
 *   parallel 20 Create RPCs at once: wall time vs 20 × the serial median
 *   memory   PSS per idle sandbox with 20 running from one template vs guest RAM
 *
 * Medians of BENCH_RUNS (default 10) runs. Env: WRENN_DIR (built images; default
 * ~/.wrenn), BENCH_RUNS, BENCH_PARALLEL (default 20).
 */
import { mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { startAgent } from '@wrenn/agent';
import { TEMPLATE_SNAPSHOT_DIR } from '@wrenn/agent/templates.ts';
import { hostAccelerator, QemuDriver } from '@wrenn/agent/vmm/qemu/index.ts';
import { streamTool, streamToolDir } from '@wrenn/agent/vmm/qemu/stream-tool.ts';
import { createLogger, layout, SYSTEM_TEAM, wrennDir } from '@wrenn/common';
import { bootFiles, buildImage, listImages } from '@wrenn/images';
import { agentClient } from '../packages/agent/test/support/agent-process.ts';
import { floorVmOf, median, rawCloneFloor, rawPauseResumeFloors } from './vmm-floor.ts';

const TOKEN = 'bench-host-token';
const ms = (x: number) => `${x.toFixed(0)} ms`;

async function timed<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const v = await fn();
  return [performance.now() - t, v];
}

async function pssKb(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  return Number(/^Pss:\s+(\d+) kB/m.exec(text)?.[1] ?? 0);
}

export async function run(): Promise<Record<string, unknown>> {
  const runs = Number(process.env.BENCH_RUNS ?? 10);
  const parallel = Number(process.env.BENCH_PARALLEL ?? 20);
  const source = wrennDir();
  if (!(await listImages(source)).some((i) => i.name === 'minimal' && i.valid)) {
    process.stdout.write(`building the minimal image into ${source} ...\n`);
    await buildImage('minimal', { dir: source });
  }
  // A WRENN_DIR of its own (short path for QMP sockets) sharing the built images.
  const dir = await mkdtemp('/tmp/wbench-');
  for (const name of ['kernels', 'cache']) await symlink(join(source, name), join(dir, name));
  await mkdir(join(dir, 'images'));
  for (const team of await readdir(join(source, 'images')))
    await symlink(join(source, 'images', team), join(dir, 'images', team));

  const agent = await startAgent({
    dir,
    hostToken: TOKEN,
    maxSlots: Math.max(64, parallel + 4),
    log: createLogger('agent', 'warn'),
  });
  const c = agentClient(agent.url, TOKEN);
  const out: Record<string, unknown> = {};
  try {
    // Warm-up create builds the template snapshot once (lazily) and is not counted.
    await c.create({ sandboxId: 'warmup', teamId: 'bench', templateId: 'minimal' });
    await c.destroy({ sandboxId: 'warmup' });

    const create: number[] = [];
    const pause: number[] = [];
    const resume: number[] = [];
    for (let i = 0; i < runs; i++) {
      const id = `b${i}`;
      create.push(
        (await timed(() => c.create({ sandboxId: id, teamId: 'bench', templateId: 'minimal' })))[0],
      );
      pause.push((await timed(() => c.pause({ sandboxId: id })))[0]);
      resume.push((await timed(() => c.resume({ sandboxId: id })))[0]);
      await c.destroy({ sandboxId: id });
    }

    // Floors on the same template files, same run.
    const image = (await listImages(source)).find((i) => i.name === 'minimal' && i.valid)!;
    const files = bootFiles(source, { ...image, manifest: image.manifest! });
    const vm = floorVmOf(files);
    const driver = new QemuDriver({ accel: (await hostAccelerator(dir)).accelerator });
    const templateDir = join(layout(dir).image(SYSTEM_TEAM, 'minimal'), TEMPLATE_SNAPSHOT_DIR);
    const clone = await rawCloneFloor(driver, vm, templateDir, runs);
    const pr = await rawPauseResumeFloors(
      driver,
      vm,
      templateDir,
      runs,
      await streamTool(streamToolDir(dir)),
    );

    // 20 at once.
    const ids = Array.from({ length: parallel }, (_, i) => `p${i}`);
    const [wall] = await timed(() =>
      Promise.all(
        ids.map((id) => c.create({ sandboxId: id, teamId: 'bench', templateId: 'minimal' })),
      ),
    );
    const pids = ids.map((id) => agent.manager.get(id).vm!.pid);
    const pss = await Promise.all(pids.map(pssKb));
    const pssMb = median(pss) / 1024;
    for (const id of ids) await c.destroy({ sandboxId: id });

    const rows = [
      ['create → envd ready', median(create), clone.medianMs, 'raw clone'],
      ['pause', median(pause), pr.migrate.medianMs, 'raw migrate-to-file'],
      ['pause (durable floor)', median(pause), pr.migrateFsync.medianMs, 'migrate + fsync'],
      ['pause (same copier)', median(pause), pr.migrateTool!.medianMs, 'migrate via wrenn-stream'],
      ['resume → envd ready', median(resume), pr.restore.medianMs, 'raw restore'],
    ] as const;
    process.stdout.write(
      `agent lifecycle, ${runs} runs each, accelerator ${agent.manager.accelerator}\n`,
    );
    for (const [name, agentMs, floorMs, floorName] of rows) {
      process.stdout.write(
        `  ${name.padEnd(22)} ${ms(agentMs).padStart(9)}   floor (${floorName}) ${ms(floorMs).padStart(9)}   ratio ${(agentMs / floorMs).toFixed(2)}×\n`,
      );
    }
    const serial = parallel * median(create);
    process.stdout.write(
      `  ${parallel} creates in parallel: wall ${ms(wall)} vs ${parallel} × serial median ${ms(serial)} (${(wall / serial).toFixed(2)}×)\n`,
    );
    process.stdout.write(
      `  PSS per idle sandbox with ${parallel} running: median ${pssMb.toFixed(0)} MiB (guest RAM 512 MiB; ${parallel} × guest = ${parallel * 512} MiB, measured total ${(pss.reduce((a, b) => a + b, 0) / 1024).toFixed(0)} MiB)\n`,
    );
    Object.assign(out, {
      runs,
      accelerator: agent.manager.accelerator,
      createMs: median(create),
      cloneFloorMs: clone.medianMs,
      pauseMs: median(pause),
      migrateFloorMs: pr.migrate.medianMs,
      migrateFsyncFloorMs: pr.migrateFsync.medianMs,
      migrateToolFloorMs: pr.migrateTool!.medianMs,
      resumeMs: median(resume),
      restoreFloorMs: pr.restore.medianMs,
      streamBytes: pr.streamBytes,
      parallel: { n: parallel, wallMs: wall, serialMs: serial },
      pssMbPerSandbox: pssMb,
      samples: { create, pause, resume },
    });
    return out;
  } finally {
    for (const s of (await c.list({})).sandboxes)
      await c.destroy({ sandboxId: s.sandboxId }).catch(() => undefined);
    await agent.close();
    await rm(dir, { recursive: true, force: true });
  }
}
