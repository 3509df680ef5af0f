import { open, readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { WrennError } from '@wrenn/common';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Run `fn` holding an exclusive lock file (O_EXCL, holding our pid). Several processes
 * (parallel test runs, two CLI builds) may build into one WRENN_DIR; they take turns.
 * A lock whose owner died is taken over.
 */
export async function withLock<T>(
  path: string,
  fn: () => Promise<T>,
  waitMs = 30 * 60_000,
): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const fh = await open(path, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (owner && !alive(owner)) {
        await rm(path, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new WrennError(
          'unavailable',
          `another build holds ${path} (pid ${owner || '?'}); try again later`,
        );
      }
      await sleep(500);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(path, { force: true });
  }
}
