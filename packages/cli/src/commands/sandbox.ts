import { readFile, writeFile } from 'node:fs/promises';
import { WrennError } from '@wrenn/common';
// The client alone: the PTY shell (protobuf, Connect) loads only for `shell`.
import { execBytes } from '@wrenn/sdk/client.ts';
import type { Sandbox } from '@wrenn/sdk/types.ts';
import type { Command } from 'commander';
import { addApiOptions, clientFor } from '../client-config.ts';
import { collect, output, parsePairs, printRecord, printTable } from '../output.ts';

const row = (s: Sandbox) => ({
  id: s.sandboxId,
  template: s.templateId,
  status: s.status,
  vcpus: s.vcpus,
  memoryMb: s.memoryMb,
  host: s.hostId,
  endAt: s.endAt,
  metadata: Object.keys(s.metadata).length ? new URLSearchParams(s.metadata).toString() : null,
});

const int = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new WrennError('invalid_argument', `--${name} must be a whole number, got '${v}'`);
  return n;
};

/** `<id>:<path>` → sandbox side of `cp`; anything else is a local path. */
function remote(spec: string): { id: string; path: string } | null {
  const m = /^([a-z0-9][a-z0-9-]{0,62}):(\/.*|[^/].*)$/.exec(spec);
  return m ? { id: m[1]!, path: m[2]! } : null;
}

/** `wrenn sandbox create|ls|info|exec|shell|cp|pause|resume|kill`. */
export function registerSandboxCommands(program: Command): void {
  const sbx = program
    .command('sandbox')
    .alias('sandboxes')
    .description('create, use and manage sandboxes');

  addApiOptions(sbx.command('create'))
    .description('create a sandbox and print its id')
    .option('-t, --template <id>', 'template', 'base')
    .option('--vcpus <n>', 'vCPUs', int('vcpus'))
    .option('--memory <mb>', 'memory in MiB', int('memory'))
    .option('--disk <mb>', 'disk in MiB', int('disk'))
    .option('--timeout <seconds>', 'seconds until the timeout action (0 = none)', int('timeout'))
    .option('--on-timeout <action>', 'kill or pause', 'kill')
    .option('--auto-resume', 'gateway traffic resumes it when paused', false)
    .option('-m, --metadata <k=v>', 'metadata (repeatable)', collect)
    .option('-e, --env <K=V>', 'environment variable (repeatable)', collect)
    .action(async (o, cmd: Command) => {
      if (o.onTimeout !== 'kill' && o.onTimeout !== 'pause')
        throw new WrennError('invalid_argument', '--on-timeout must be kill or pause');
      const s = await clientFor(cmd).sandboxes.create({
        templateId: o.template,
        vcpus: o.vcpus,
        memoryMb: o.memory,
        diskMb: o.disk,
        timeoutSeconds: o.timeout,
        lifecycle: { onTimeout: o.onTimeout, autoResume: o.autoResume },
        metadata: parsePairs(o.metadata, '--metadata'),
        envVars: parsePairs(o.env, '--env'),
      });
      output(o.json, s, () => process.stdout.write(`${s.sandboxId}\n`));
    });

  addApiOptions(sbx.command('ls').alias('list'))
    .description('list sandboxes (newest first)')
    .option('-m, --metadata <k=v>', 'only sandboxes with this metadata (repeatable)', collect)
    .option('-s, --status <list>', 'comma-separated statuses (default: all but stopped)')
    .option('--limit <n>', 'page size', int('limit'), 100)
    .option('--all', 'follow nextToken through every page', false)
    .action(async (o, cmd: Command) => {
      const client = clientFor(cmd);
      const all: Sandbox[] = [];
      let nextToken: string | undefined;
      do {
        const page = await client.sandboxes.list({
          metadata: parsePairs(o.metadata, '--metadata'),
          status: o.status?.split(','),
          limit: o.limit,
          nextToken,
        });
        all.push(...page.sandboxes);
        nextToken = page.nextToken ?? undefined;
      } while (o.all && nextToken);
      output(o.json, all, () =>
        printTable(all.map(row), [
          'id',
          'template',
          'status',
          'vcpus',
          'memoryMb',
          'host',
          'endAt',
          'metadata',
        ]),
      );
    });

  addApiOptions(sbx.command('info').argument('<id>'))
    .description('show one sandbox')
    .action(async (id: string, o, cmd: Command) => {
      const s = await clientFor(cmd).sandboxes.get(id);
      const { envdAccessToken: _hidden, ...shown } = s;
      output(o.json, s, () => printRecord(shown));
    });

  addApiOptions(sbx.command('exec').argument('<id>').argument('<command...>'))
    .description("run a command to completion; its output and exit code become wrenn's")
    .option('--cwd <dir>', 'working directory')
    .option('-u, --user <name>', 'user to run as')
    .option('-e, --env <K=V>', 'environment variable (repeatable)', collect)
    .option('--timeout <ms>', 'give up after this many milliseconds', int('timeout'))
    .addHelpText(
      'after',
      '\nOne argument runs through /bin/sh -c; several are an exact argv:\n  wrenn sandbox exec ID "ls -l | wc -l"\n  wrenn sandbox exec ID -- python3 -c "print(1)"',
    )
    .action(async (id: string, command: string[], o, cmd: Command) => {
      const r = await clientFor(cmd).sandboxes.exec(id, {
        ...(command.length === 1 ? { cmd: command[0] } : { argv: command }),
        cwd: o.cwd,
        user: o.user,
        env: parsePairs(o.env, '--env'),
        timeoutMs: o.timeout,
      });
      if (o.json) {
        output(true, r, () => {});
      } else {
        process.stdout.write(execBytes(r.stdout, r.stdoutEncoding));
        process.stderr.write(execBytes(r.stderr, r.stderrEncoding));
        if (r.truncated) process.stderr.write('wrenn: output truncated\n');
      }
      process.exitCode = r.exitCode;
    });

  addApiOptions(sbx.command('shell').argument('<id>'))
    .description('interactive shell (PTY) in a sandbox')
    .option('-u, --user <name>', 'user to log in as')
    .option('--cmd <path>', 'shell to start', '/bin/bash')
    .action(async (id: string, o, cmd: Command) => {
      const client = clientFor(cmd);
      const s = await client.sandboxes.get(id);
      const stdin = process.stdin;
      const { openShell } = await import('@wrenn/sdk/shell.ts');
      const session = await openShell(s, {
        sandboxUrl: client.sandboxUrl,
        cols: process.stdout.columns || 80,
        rows: process.stdout.rows || 24,
        cmd: o.cmd,
        args: o.cmd.endsWith('bash') ? ['-i', '-l'] : ['-i'],
        user: o.user,
        onData: (d) => process.stdout.write(d),
      });
      const onResize = () =>
        void session
          .resize(process.stdout.columns || 80, process.stdout.rows || 24)
          .catch(() => {});
      process.stdout.on('resize', onResize);
      if (stdin.isTTY) stdin.setRawMode(true);
      stdin.on('data', (d: Buffer) => void session.write(d).catch(() => {}));
      stdin.resume();
      const code = await session.exited;
      process.stdout.off('resize', onResize);
      if (stdin.isTTY) stdin.setRawMode(false);
      stdin.pause();
      process.exitCode = code;
    });

  addApiOptions(sbx.command('cp').argument('<src>').argument('<dst>'))
    .description(
      'copy a file: `wrenn sandbox cp ./a ID:/tmp/a` or `wrenn sandbox cp ID:/tmp/a ./a` (- = stdin/stdout)',
    )
    .option('-u, --user <name>', 'user owning the file in the sandbox')
    .action(async (src: string, dst: string, o, cmd: Command) => {
      const client = clientFor(cmd);
      const from = remote(src);
      const to = remote(dst);
      if (!!from === !!to)
        throw new WrennError(
          'invalid_argument',
          'exactly one side of cp must be <sandbox-id>:<path>',
        );
      if (to) {
        const data = src === '-' ? await readStdin() : await readFile(src);
        await client.sandboxes.writeFile(to.id, to.path, data, { user: o.user });
      } else {
        const data = await client.sandboxes.readFile(from!.id, from!.path, { user: o.user });
        if (dst === '-') process.stdout.write(data);
        else await writeFile(dst, data);
      }
    });

  for (const [verb, desc] of [
    ['pause', 'pause a running sandbox to disk'],
    ['resume', 'resume a paused sandbox'],
    ['kill', 'destroy a sandbox and its data'],
  ] as const) {
    addApiOptions(sbx.command(verb).argument('<id>'))
      .description(desc)
      .action(async (id: string, o, cmd: Command) => {
        const client = clientFor(cmd);
        const result =
          verb === 'kill' ? await client.sandboxes.kill(id) : await client.sandboxes[verb](id);
        output(o.json, result ?? { sandboxId: id, status: 'stopped' }, () =>
          process.stdout.write(`${id} ${result?.status ?? 'killed'}\n`),
        );
      });
  }
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}
