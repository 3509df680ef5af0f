import { WrennError } from '@wrenn/common/errors.ts';
import type { ManagedProcess } from './managed.ts';

/** Ended processes stay connectable this long (or until RETAIN_ENDED newer ones ended). */
const ENDED_TTL_MS = 60_000;
const RETAIN_ENDED = 32;

export type Selector =
  | { case: 'pid'; value: number }
  | { case: 'tag'; value: string }
  | { case: undefined };

/**
 * Every process envd started, by pid. Running ones are listed; ended ones linger briefly so
 * a client that connects just after the end still gets the output and the exit code.
 */
export class ProcessRegistry {
  private readonly byPid = new Map<number, ManagedProcess>();

  add(p: ManagedProcess): void {
    this.sweep();
    this.byPid.set(p.pid, p);
  }

  running(): ManagedProcess[] {
    return [...this.byPid.values()].filter((p) => !p.end);
  }

  /** The process a selector names; `running` excludes ones that have ended. */
  find(sel: Selector | undefined, opts: { running?: boolean } = {}): ManagedProcess {
    this.sweep();
    let found: ManagedProcess | undefined;
    if (sel?.case === 'pid') found = this.byPid.get(sel.value);
    else if (sel?.case === 'tag') {
      // Prefer a running process with the tag over an ended one.
      for (const p of this.byPid.values())
        if (p.tag === sel.value && (!found || (found.end && !p.end))) found = p;
    } else throw new WrennError('invalid_argument', 'process selector needs a pid or a tag');
    if (!found || (opts.running && found.end)) {
      const what = sel.case === 'pid' ? `pid ${sel.value}` : `tag '${sel.value}'`;
      throw new WrennError('not_found', `process with ${what} not found`);
    }
    return found;
  }

  private sweep(): void {
    const now = Date.now();
    const ended = [...this.byPid.values()]
      .filter((p) => p.end)
      .sort((a, b) => b.endedAt - a.endedAt);
    ended.forEach((p, i) => {
      // A reused pid replaces an ended entry in add(); here only age and count matter.
      if (i >= RETAIN_ENDED || now - p.endedAt > ENDED_TTL_MS) this.byPid.delete(p.pid);
    });
  }
}
