import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { WrennError } from '@wrenn/common';
import { QEMU_BINARY } from './qemu.ts';

/** A host tool the image builder runs, and the Debian package that provides it. */
export interface Tool {
  command: string;
  debian: string;
}

export const TOOLS = {
  aptGet: { command: 'apt-get', debian: 'apt' },
  aptCache: { command: 'apt-cache', debian: 'apt' },
  dpkgDeb: { command: 'dpkg-deb', debian: 'dpkg' },
  busybox: { command: 'busybox', debian: 'busybox-static' },
  mkfsExt4: { command: 'mkfs.ext4', debian: 'e2fsprogs' },
  mmdebstrap: { command: 'mmdebstrap', debian: 'mmdebstrap' },
  ldd: { command: 'ldd', debian: 'libc-bin' },
  tar: { command: 'tar', debian: 'tar' },
  qemu: { command: QEMU_BINARY, debian: 'qemu-system-x86' },
} as const satisfies Record<string, Tool>;

const SEARCH_EXTRA = ['/usr/sbin', '/sbin'];

/** Absolute path of a tool, or a clear error naming the Debian package to install. */
export async function requireTool(tool: Tool): Promise<string> {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...SEARCH_EXTRA].filter(Boolean);
  for (const dir of dirs) {
    const candidate = join(dir, tool.command);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  throw new WrennError(
    'failed_precondition',
    `${tool.command} not found: install the Debian package ${tool.debian} (apt-get install ${tool.debian})`,
  );
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Called with each line the command writes on stderr (progress parsing). */
  onStderrLine?: (line: string) => void;
}

/** Output that means the disk is full, in whatever words the tool uses. */
const ENOSPC_TEXT = /No space left on device|ENOSPC|Could not allocate block/i;

export function diskFullError(where: string, cause?: unknown): WrennError {
  return new WrennError(
    'resource_exhausted',
    `disk full while writing under ${where}: free some space and run the build again`,
    { cause },
  );
}

export function isDiskFull(e: unknown): boolean {
  return (e as NodeJS.ErrnoException)?.code === 'ENOSPC';
}

/**
 * Run a tool to completion. A non-zero exit becomes one WrennError line carrying the
 * tool's last stderr line; a full disk becomes `resource_exhausted`.
 */
export function run(tool: Tool, path: string, args: string[], opts: RunOptions = {}) {
  return new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(path, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    let partial = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => {
      const s = b.toString();
      err = (err + s).slice(-64 * 1024);
      if (!opts.onStderrLine) return;
      const lines = (partial + s).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) opts.onStderrLine(line);
    });
    child.on('error', (e) =>
      reject(new WrennError('internal', `cannot run ${tool.command}: ${e.message}`)),
    );
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString();
      if (code === 0) return resolve({ stdout, stderr: err });
      if (ENOSPC_TEXT.test(err)) return reject(diskFullError(opts.cwd ?? 'the build directory'));
      const last = lastMeaningfulLine(err) || lastMeaningfulLine(stdout);
      const why = signal ? `killed by ${signal}` : `exit status ${code}`;
      reject(
        new WrennError('internal', `${tool.command} failed (${why})${last ? `: ${last}` : ''}`),
      );
    });
  });
}

function lastMeaningfulLine(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return (lines.findLast((l) => /^E:|error|fail/i.test(l)) ?? lines.at(-1) ?? '').slice(0, 300);
}
