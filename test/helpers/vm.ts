import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Accelerator, QEMU_BINARY, qemuArgs } from '@wrenn/agent/vmm/qemu/args.ts';
import { freeLoopbackPort } from '@wrenn/common';
import { bootFiles, ENVD_PORT, guestCmdline, listImages } from '@wrenn/images';

const execFileP = promisify(execFile);

export interface BootOptions {
  /** WRENN_DIR holding built images (tests: inject('wrennDir')). */
  wrennDir: string;
  image: string;
  memoryMb?: number;
  vcpus?: number;
  /** Default tcg: the accelerator every CI machine has (DESIGN.md section 6). */
  accel?: Accelerator;
  /** Another `-cpu` model than the agent's (e.g. to see envd's snapshot refused). */
  cpu?: string;
  /** Appended to the image's kernel command line. */
  cmdlineExtra?: string;
  /** How long to wait for envd's /health (default 120 s: TCG on a busy 2-core box). */
  readyTimeoutMs?: number;
  /** Return right after QEMU starts, without waiting for /health. */
  noWait?: boolean;
}

/** A booted test VM: its forwarded envd URL and its console; kill() is idempotent. */
export interface TestVm {
  envdUrl: string;
  hostPort: number;
  pid: number;
  /** ms after spawn at which each console line arrived. */
  consoleLines: { at: number; line: string }[];
  console(): string;
  /** Resolve with the ms after spawn at which a console line matched. */
  waitForConsole(re: RegExp, timeoutMs?: number): Promise<number>;
  /** ms after spawn at which /health first answered 204. */
  waitReady(timeoutMs?: number): Promise<number>;
  /** Type on the guest's serial console (e.g. with `wrenn.init=/bin/sh`). */
  typeConsole(text: string): void;
  exited: Promise<number | null>;
  kill(): Promise<void>;
}

const live = new Set<ChildProcess>();
// Whatever happens to the test process, no QEMU it started outlives it.
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/**
 * Boot a built image the way the agent will: a qcow2 overlay over the read-only rootfs
 * (the image itself is never written), user-mode networking with envd forwarded to a
 * free loopback port, the console captured. Waits for GET /health → 204 unless noWait.
 */
export async function bootImage(opts: BootOptions): Promise<TestVm> {
  const image = (await listImages(opts.wrennDir)).find((i) => i.name === opts.image && i.valid);
  if (!image?.manifest) {
    throw new Error(
      `image ${opts.image} is not built in ${opts.wrennDir} (run: wrenn images build ${opts.image})`,
    );
  }
  const files = bootFiles(opts.wrennDir, { ...image, manifest: image.manifest });
  const work = await mkdtemp(join(tmpdir(), 'wrenn-test-vm-'));
  const overlay = join(work, 'rootfs.qcow2');
  await execFileP('qemu-img', [
    'create',
    '-q',
    '-f',
    'qcow2',
    '-b',
    files.rootfs,
    '-F',
    'raw',
    overlay,
  ]);
  const hostPort = await freeLoopbackPort();
  const accel = opts.accel ?? 'tcg';
  const args = qemuArgs({
    name: `wrenn-test-${opts.image}`,
    accel,
    vcpus: opts.vcpus ?? 1,
    memoryMb: opts.memoryMb ?? 512,
    kernel: files.kernel,
    initrd: files.initrd,
    cmdline: guestCmdline(files.cmdline, accel, opts.cmdlineExtra),
    rootDisk: { path: overlay, format: 'qcow2' },
    net: { mode: 'user', forwards: [{ hostPort, guestPort: ENVD_PORT }] },
    console: { kind: 'stdio' },
  });
  if (opts.cpu) args[args.indexOf('-cpu') + 1] = opts.cpu;
  const started = performance.now();
  // stdin stays an open pipe: on EOF from /dev/null QEMU's stdio chardev may stop the console.
  const child = spawn(QEMU_BINARY, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  live.add(child);
  const consoleLines: { at: number; line: string }[] = [];
  const watchers = new Set<() => void>();
  let partial = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => {
    const at = performance.now() - started;
    const parts = (partial + b.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) consoleLines.push({ at, line: line.replace(/\r$/, '') });
    for (const w of watchers) w();
  });
  child.stderr!.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      live.delete(child);
      for (const w of watchers) w();
      resolve(code);
    }),
  );
  const isDead = () => child.exitCode !== null || child.signalCode !== null;
  const consoleText = () => [...consoleLines.map((l) => l.line), partial].join('\n');
  const deathMessage = () =>
    `QEMU exited (${child.exitCode ?? child.signalCode}): ${stderr.trim()}\n${consoleText()}`;

  const waitForConsole = (re: RegExp, timeoutMs = 120_000) =>
    new Promise<number>((resolve, reject) => {
      const check = () => {
        const hit = consoleLines.find((l) => re.test(l.line));
        if (hit) return done(() => resolve(hit.at));
        if (isDead()) return done(() => reject(new Error(deathMessage())));
      };
      const timer = setTimeout(
        () =>
          done(() =>
            reject(new Error(`no console line ${re} within ${timeoutMs} ms:\n${consoleText()}`)),
          ),
        timeoutMs,
      );
      const done = (f: () => void) => {
        clearTimeout(timer);
        watchers.delete(check);
        f();
      };
      watchers.add(check);
      check();
    });

  const envdUrl = `http://127.0.0.1:${hostPort}`;
  // Probes overlap (a new one every 20 ms, each allowed 2 s): a probe sent while eth0 is
  // still coming up loses its SYN inside slirp and hangs until its timeout, and waiting for
  // it would report readiness up to 2 s late.
  const waitReady = (timeoutMs = opts.readyTimeoutMs ?? 120_000) =>
    new Promise<number>((resolve, reject) => {
      const deadline = performance.now() + timeoutMs;
      let settled = false;
      let inFlight = 0;
      const finish = (f: () => void) => {
        if (settled) return;
        settled = true;
        clearInterval(timer);
        f();
      };
      const probe = () => {
        if (settled) return;
        if (isDead()) return finish(() => reject(new Error(deathMessage())));
        if (performance.now() > deadline) {
          return finish(() =>
            reject(new Error(`envd not ready within ${timeoutMs} ms:\n${consoleText()}`)),
          );
        }
        if (inFlight >= 100) return;
        inFlight++;
        fetch(`${envdUrl}/health`, { signal: AbortSignal.timeout(2_000) })
          .then(
            (r) => r.status === 204,
            () => false,
          )
          .then((ok) => {
            inFlight--;
            const at = performance.now() - started;
            if (ok) finish(() => resolve(at));
          });
      };
      const timer = setInterval(probe, 20);
      probe();
    });

  const kill = async () => {
    if (!isDead()) child.kill('SIGKILL');
    await exited;
    await rm(work, { recursive: true, force: true });
  };

  const vm: TestVm = {
    envdUrl,
    hostPort,
    pid: child.pid!,
    consoleLines,
    console: consoleText,
    waitForConsole,
    waitReady,
    typeConsole: (text) => child.stdin!.write(text),
    exited,
    kill,
  };
  if (!opts.noWait) {
    try {
      await waitReady();
    } catch (e) {
      await kill();
      throw e;
    }
  }
  return vm;
}

/** Boot, run `fn`, and always kill the VM. */
export async function withVm<T>(opts: BootOptions, fn: (vm: TestVm) => Promise<T>): Promise<T> {
  const vm = await bootImage(opts);
  try {
    return await fn(vm);
  } finally {
    await vm.kill();
  }
}
