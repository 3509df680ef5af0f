import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const WRENN_BIN = fileURLToPath(new URL('../../../cli/bin/wrenn.mjs', import.meta.url));

/** Runs `wrenn …` as a real child process (async: the test's own servers must keep serving). */
export function wrenn(
  args: string[],
  env: Record<string, string>,
  stdin?: Buffer,
): Promise<{ code: number; stdout: string; stderr: string; raw: Buffer }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [WRENN_BIN, ...args],
      { env: { ...process.env, ...env }, encoding: 'buffer', maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        resolve({
          code: err ? (typeof err.code === 'number' ? err.code : 1) : 0,
          stdout: stdout.toString(),
          stderr: stderr.toString(),
          raw: stdout,
        });
      },
    );
    if (stdin) child.stdin!.end(stdin);
    else child.stdin!.end();
  });
}
