import type { Logger } from '@wrenn/common';

/**
 * Named lifecycle steps. Each name is three things at once: the log event written when the
 * step completes, and the crash point `WRENN_CRASH_AT=<name>` that kills the agent right
 * after the step's effects are done (on disk and in the VMM), before the next step starts.
 * Tests use the crash points to prove that no instant loses a paused sandbox.
 */
export const CRASH_POINTS = {
  create: [
    'allocate-slot',
    'make-dir',
    'create-overlay',
    'start-vm',
    'write-running-state',
    'init-envd',
    'mark-running',
  ],
  pause: [
    'drain-connections',
    'pause-vcpus',
    'write-staging',
    'fsync-staging',
    'link-overlay',
    'write-meta',
    'trash-live',
    'promote-staging',
    'stop-vm',
    'delete-trash',
  ],
  resume: ['start-vm', 'write-running-state', 'drop-pause-meta', 'run-vcpus', 'init-envd'],
  destroy: ['stop-vm', 'trash-dir', 'delete-trash'],
  /** CreateTemplateSnapshot from a running sandbox, and the lazy build of a template's snapshot. */
  template: [
    'pause-vcpus',
    'write-template-staging',
    'copy-rootfs',
    'resume-vcpus',
    'promote-template',
    'build-snapshot',
    'promote-snapshot',
  ],
} as const;

export type Verb = keyof typeof CRASH_POINTS;
export type StepName<V extends Verb> = (typeof CRASH_POINTS)[V][number];

/** Every crash point as `<verb>:<step>`, the form `WRENN_CRASH_AT` takes. */
export const ALL_CRASH_POINTS: string[] = Object.entries(CRASH_POINTS).flatMap(([verb, steps]) =>
  steps.map((s) => `${verb}:${s}`),
);

/**
 * Run one named step: do it, log it, and die here if `WRENN_CRASH_AT` names it.
 * The death is SIGKILL-like: no cleanup, no flush — exactly what a kill -9 leaves behind.
 */
export async function step<V extends Verb, T>(
  log: Logger,
  verb: V,
  name: StepName<V>,
  fields: Record<string, unknown>,
  fn: () => Promise<T> | T,
): Promise<T> {
  const started = performance.now();
  const out = await fn();
  log.debug(
    { event: `${verb}:${name}`, ms: Math.round(performance.now() - started), ...fields },
    `${verb}:${name}`,
  );
  crashPoint(`${verb}:${name}`);
  return out;
}

export function crashPoint(point: string): void {
  if (process.env.WRENN_CRASH_AT === point) {
    process.stderr.write(`wrenn-agent: WRENN_CRASH_AT=${point}: dying now\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
