import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { WrennError } from '@wrenn/common';
import { QEMU_BINARY } from './args.ts';

/**
 * QEMU processes that outlive the agent: started with `-daemonize` (QEMU forks, calls
 * setsid, writes its pidfile, and its first process exits 0 only once the VM is set up —
 * so a zero exit means the QMP socket listens), found again by pid, and checked by their
 * command line before any signal so a recycled pid is never mistaken for our VM.
 */

/**
 * Start a daemonized QEMU and return its pid. Errors QEMU prints before it detaches (bad
 * option, missing file, port in use) come back in the WrennError message.
 */
export async function spawnDaemon(
  args: string[],
  pidFile: string,
  timeoutMs = 60_000,
): Promise<number> {
  if (!args.includes('-daemonize'))
    throw new WrennError('internal', 'spawnDaemon needs -daemonize in the QEMU arguments');
  const { code, signal, stderr } = await new Promise<{
    code: number | null;
    signal: string | null;
    stderr: string;
  }>((resolve, reject) => {
    // detached: the launcher is in its own process group, so a Ctrl-C aimed at the agent's
    // group cannot reach QEMU while it is still starting.
    const child = spawn(QEMU_BINARY, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      err = (err + d).slice(-8192);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(
        new WrennError('failed_precondition', `cannot run ${QEMU_BINARY}: ${e.message}`, {
          cause: e,
        }),
      );
    });
    child.on('close', (c, s) => {
      clearTimeout(timer);
      resolve({ code: c, signal: s, stderr: err });
    });
  });
  if (code !== 0) {
    const why =
      stderr.trim().split('\n').filter(Boolean).slice(-3).join(' | ') || `exit ${signal ?? code}`;
    throw new WrennError('internal', `QEMU failed to start: ${why}`);
  }
  const pid = await readPidFile(pidFile);
  if (pid === undefined)
    throw new WrennError('internal', `QEMU started but wrote no pid to ${pidFile}`);
  return pid;
}

export async function readPidFile(path: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

/**
 * True when `pid` is a live (not zombie) QEMU with `marker` as one of its arguments (the
 * VM's `-name`, unique per VM, and unlike its paths unchanged when the agent renames the
 * VM's directory). A daemonized QEMU is reparented to PID 1,
 * which may not reap it: a zombie counts as dead.
 */
export async function isOurQemu(pid: number, marker: string): Promise<boolean> {
  const [stat, cmdline] = await Promise.all([
    readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''),
    readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => ''),
  ]);
  if (!stat) return false;
  // Field 3 (state) follows the parenthesised comm, which may itself contain spaces.
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  if (state === 'Z' || state === 'X') return false;
  const argv = cmdline.split('\0');
  return /qemu/.test(argv[0] ?? '') && argv.includes(marker);
}

/** Alive in the kernel's eyes (not a zombie), whatever it is. */
export async function isAlive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (!stat) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** Wait until the process is gone (or a zombie); false on timeout. */
export async function waitExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  // A signalled QEMU is usually gone within a few ms: poll fast first, then back off.
  for (let delayMs = 1; await isAlive(pid); delayMs = Math.min(delayMs * 2, 20)) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, delayMs));
  }
  return true;
}

/**
 * SIGTERM, then SIGKILL after `graceMs`, and wait for the exit. Only signals `pid` when it
 * is still our QEMU (`marker` in its command line). Resolves once the process is gone.
 */
export async function terminate(pid: number, marker: string, graceMs = 3000): Promise<void> {
  if (!(await isOurQemu(pid, marker))) return;
  signal(pid, 'SIGTERM');
  if (await waitExit(pid, graceMs)) return;
  if (!(await isOurQemu(pid, marker))) return;
  signal(pid, 'SIGKILL');
  if (!(await waitExit(pid, 10_000))) {
    throw new WrennError('internal', `QEMU pid ${pid} did not exit after SIGKILL`);
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}
