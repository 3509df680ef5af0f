import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { errorMessage, WrennError, wrennDir, writeFileAtomic } from '@wrenn/common';
import type { RunningControlPlane } from '@wrenn/control-plane';
import type { Command } from 'commander';
import { allOpts, ENV_FILE } from '../client-config.ts';
import { startFromFlags, untilSignal } from './control-plane.ts';

/** Same name as the control plane's ADMIN_KEY_FILE (not imported: it would load the server). */
const ADMIN_KEY_FILE = 'admin-key';
const WRENN_BIN = fileURLToPath(new URL('../../bin/wrenn.mjs', import.meta.url));
const AGENT_READY_TIMEOUT_MS = 180_000;

/** Builds the images that are missing or stale; the `base` image needs root (mmdebstrap). */
async function buildImages(dir: string): Promise<void> {
  const { IMAGE_NAMES, IMAGES, buildImage, terminalProgress } = await import('@wrenn/images');
  for (const name of IMAGE_NAMES) {
    if (
      IMAGES[name].needsRoot &&
      process.getuid?.() !== 0 &&
      !existsSync(join(dir, 'images', 'public', name))
    ) {
      process.stderr.write(
        `wrenn: skipping the ${name} image (building it needs root); sandboxes can use the other images\n`,
      );
      continue;
    }
    const r = await buildImage(name, { dir, progress: terminalProgress() });
    if (r.status === 'built')
      process.stderr.write(`wrenn: built the ${name} image (${r.reason ?? 'new'})\n`);
  }
}

/**
 * How the agent joins: reuse its agent.json when it names this control plane and a host
 * the database knows; otherwise a fresh one-time registration token.
 */
async function agentJoinArgs(
  cp: RunningControlPlane,
  dir: string,
): Promise<{ args: string[]; reusedHostId?: string }> {
  const file = join(dir, 'agent.json');
  if (existsSync(file)) {
    try {
      const id = JSON.parse(readFileSync(file, 'utf8')) as {
        controlPlaneUrl?: string;
        hostId?: string;
      };
      if (id.controlPlaneUrl === cp.url && id.hostId) {
        const known = await cp.core.db.kysely
          .selectFrom('hosts')
          .select('id')
          .where('id', '=', id.hostId)
          .executeTakeFirst();
        if (known) return { args: ['--control-plane', cp.url], reusedHostId: id.hostId };
        // The database forgot this host (fresh DB): its identity is useless, keep it aside.
        renameSync(file, `${file}.stale-${Date.now()}`);
      }
    } catch (e) {
      process.stderr.write(`wrenn: ignoring unreadable ${file}: ${errorMessage(e)}\n`);
    }
  }
  const admin = await cp.core.db.kysely
    .selectFrom('api_keys')
    .select(['id', 'team_id'])
    .where('is_admin', '=', 1)
    .executeTakeFirstOrThrow();
  const { token } = await cp.core.hosts.createRegistrationToken({
    keyId: admin.id,
    teamId: admin.team_id,
    isAdmin: true,
  });
  return { args: ['--register', token, '--control-plane', cp.url] };
}

/** Spawns `wrenn agent` as a child (as in production) and waits for its `agent-ready` line. */
async function startAgentChild(
  dir: string,
  joinArgs: string[],
): Promise<{ child: ChildProcess; url: string }> {
  const log = createWriteStream(join(dir, 'agent.log'), { flags: 'a', mode: 0o600 });
  const child = spawn(
    process.execPath,
    [WRENN_BIN, 'agent', '--dir', dir, '--port', '0', ...joinArgs],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: process.env,
    },
  );
  child.stderr!.pipe(log);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new WrennError(
            'unavailable',
            `the agent did not start within ${AGENT_READY_TIMEOUT_MS / 1000} s; see ${join(dir, 'agent.log')}`,
          ),
        ),
      AGENT_READY_TIMEOUT_MS,
    );
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      log.write(`${line}\n`);
      try {
        const ev = JSON.parse(line) as { event?: string; url?: string };
        if (ev.event === 'agent-ready' && ev.url) {
          clearTimeout(timer);
          resolve(ev.url);
        }
      } catch {
        // a log line, not an event
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(
        new WrennError(
          'unavailable',
          `the agent exited (code ${code}) before it was ready; see ${join(dir, 'agent.log')}`,
        ),
      );
    });
  });
  return { child, url };
}

export function envLines(url: string, key: string): string[] {
  return [
    `export WRENN_API_URL=${url}`,
    `export WRENN_API_KEY=${key}`,
    `export E2B_API_URL=${url}`,
    `export E2B_SANDBOX_URL=${url}`,
    `export E2B_API_KEY=${key}`,
  ];
}

/** `wrenn up`: control plane + one agent, embedded defaults, images built when missing. */
export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description(
      'start Wrenn on this machine: control plane + one agent (SQLite, user-mode networking)',
    )
    .option('--host <addr>', 'address to bind the API and gateway', '127.0.0.1')
    .option('--port <n>', 'API and gateway port', '3000')
    .option('--no-build', 'do not build missing images')
    .action(async (_o, cmd: Command) => {
      const o = allOpts(cmd) as { dir?: string; host: string; port: string; build: boolean };
      const dir = wrennDir(o.dir);
      if (o.build) await buildImages(dir);
      const cp = await startFromFlags(
        { dir, host: o.host, port: o.port, databaseUrl: undefined },
        process.env.WRENN_LOG_LEVEL ?? 'warn',
      );
      let agent: ChildProcess | undefined;
      try {
        const joining = await agentJoinArgs(cp, dir);
        const started = await startAgentChild(dir, joining.args);
        agent = started.child;
        if (joining.reusedHostId) {
          // The agent listens on a fresh port each start; the host row must follow it.
          await cp.core.db.kysely
            .updateTable('hosts')
            .set({ agent_url: started.url })
            .where('id', '=', joining.reusedHostId)
            .execute();
          cp.core.agents.forget(joining.reusedHostId);
        }
        const key = (cp.adminKey ?? readFileSync(join(dir, ADMIN_KEY_FILE), 'utf8')).trim();
        const lines = envLines(cp.url, key);
        await writeFileAtomic(join(dir, ENV_FILE), `${lines.join('\n')}\n`, 0o600);
        process.stdout.write(`Wrenn is ready\n${lines.join('\n')}\n`);
        // How to use it, on stderr so stdout stays the ready line + exports for scripts.
        process.stderr.write(
          [
            'wrenn: try it from another shell (the CLI reads $WRENN_DIR/env by itself):',
            `  npx wrenn --dir ${dir} sandbox create            # prints the new sandbox id`,
            `  npx wrenn --dir ${dir} sandbox exec <id> uname -a`,
            `  npx wrenn --dir ${dir} sandbox shell <id>`,
            `  or, with the e2b SDK: . ${join(dir, ENV_FILE)} && node your-e2b-script.mjs`,
            '',
          ].join('\n'),
        );
        if (cp.adminKey)
          process.stderr.write(
            `wrenn: created the admin API key (saved 0600 in ${join(dir, ADMIN_KEY_FILE)})\n`,
          );
        const exited = new Promise<string>((resolve) =>
          agent!.once('exit', (code) => resolve(`agent exited (code ${code})`)),
        );
        const why = await Promise.race([untilSignal(), exited]);
        if (why.startsWith('agent')) {
          process.stderr.write(`wrenn: ${why}; stopping. See ${join(dir, 'agent.log')}\n`);
          process.exitCode = 1;
        }
      } finally {
        if (agent && agent.exitCode === null) {
          agent.kill('SIGTERM');
          await new Promise((r) => agent!.once('exit', r));
        }
        await cp.close();
      }
    });
}
