import cliProgress from 'cli-progress';

/**
 * How a build reports what it is doing. Stages are named steps ("download kernel",
 * "mkfs.ext4"); `advance` reports bytes done out of `total` for the current stage.
 */
export interface Progress {
  stage(name: string, total?: number): void;
  advance(bytes: number): void;
  /** A line of detail (e.g. an mmdebstrap phase) shown without ending the stage. */
  note(text: string): void;
  done(summary?: string): void;
}

export const quietProgress: Progress = {
  stage() {},
  advance() {},
  note() {},
  done() {},
};

const mib = (n: number) => `${(n / (1 << 20)).toFixed(1)} MiB`;

/** A real progress bar on a terminal; one line per stage when output is not a TTY. */
export function terminalProgress(stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return lineProgress(stream);
  let bar: cliProgress.SingleBar | undefined;
  let stageName = '';
  let done = 0;
  let total = 0;
  const stop = () => {
    bar?.stop();
    bar = undefined;
  };
  return {
    stage(name, t) {
      stop();
      stageName = name;
      done = 0;
      total = t ?? 0;
      bar = new cliProgress.SingleBar(
        {
          stream,
          format: total ? '{stage} [{bar}] {percentage}% {bytes}' : '{stage} {detail}',
          hideCursor: true,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total || 1, 0, { stage: stageName.padEnd(22), bytes: '', detail: '' });
    },
    advance(n) {
      done += n;
      bar?.update(Math.min(done, total || 1), { bytes: `${mib(done)}/${mib(total)}` });
    },
    note(text) {
      bar?.update({ detail: text.slice(0, 60) });
    },
    done(summary) {
      stop();
      if (summary) stream.write(`${summary}\n`);
    },
  };
}

function lineProgress(stream: NodeJS.WritableStream): Progress {
  return {
    stage(name, total) {
      stream.write(`wrenn: ${name}${total ? ` (${mib(total)})` : ''}\n`);
    },
    advance() {},
    note() {},
    done(summary) {
      if (summary) stream.write(`${summary}\n`);
    },
  };
}
