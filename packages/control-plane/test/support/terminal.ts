import * as pty from 'node-pty';
import { WRENN_BIN } from './cli.ts';

export interface Terminal {
  term: pty.IPty;
  /** Everything the terminal showed so far. */
  screen(): string;
  /** Resolves when the output matches; rejects (with the output) if the process ends first. */
  until(re: RegExp): Promise<void>;
  exit: Promise<number>;
}

/** `wrenn …` in a real pseudo-terminal, as a user at a keyboard runs it. */
export function wrennInTerminal(
  args: string[],
  env: Record<string, string>,
  cols: number,
  rows: number,
): Terminal {
  const term = pty.spawn(process.execPath, [WRENN_BIN, ...args], {
    cols,
    rows,
    env: { ...process.env, ...env } as Record<string, string>,
  });
  let seen = '';
  let ended = false;
  const waiters = new Set<() => void>();
  term.onData((d) => {
    seen += d;
    for (const w of waiters) w();
  });
  const exit = new Promise<number>((resolve) =>
    term.onExit((e) => {
      ended = true;
      for (const w of waiters) w();
      resolve(e.exitCode);
    }),
  );
  return {
    term,
    exit,
    screen: () => seen,
    until(re) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (re.test(seen)) {
            waiters.delete(check);
            resolve();
          } else if (ended) {
            waiters.delete(check);
            reject(new Error(`the terminal closed before ${re} appeared; it showed:\n${seen}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}
