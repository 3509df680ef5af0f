import { randomBytes } from 'node:crypto';
import { WrennError, wrennDir } from '@wrenn/common';
import type { Command } from 'commander';

/**
 * `wrenn agent`: the host agent as a foreground process (what `wrenn up` spawns as a
 * child). SIGTERM/SIGINT close it: VMs are left for re-adoption, or paused with
 * `--pause-on-shutdown`.
 */
export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('run the host agent (sandboxes on this machine)')
    .option('--dir <path>', 'state directory (default: $WRENN_DIR or ~/.wrenn)')
    .option('--host <addr>', 'address to bind', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0 = any)', '0')
    .option('--token <token>', 'host token every request must carry (default: $WRENN_HOST_TOKEN)')
    .option('--register <token>', 'register with the control plane using this one-time token')
    .option('--control-plane <url>', 'control plane URL (with --register, or to reuse agent.json)')
    .option('--pause-on-shutdown', 'pause every running sandbox when stopping', false)
    .action(
      async (
        o: {
          dir?: string;
          host: string;
          port: string;
          token?: string;
          register?: string;
          controlPlane?: string;
          pauseOnShutdown: boolean;
        },
        cmd: Command,
      ) => {
        const dir = wrennDir(o.dir ?? cmd.parent?.opts().dir);
        const port = Number(o.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535)
          throw new WrennError('invalid_argument', `bad --port ${o.port}`);
        if (o.register && !o.controlPlane)
          throw new WrennError('invalid_argument', '--register needs --control-plane <url>');
        let token = o.token ?? process.env.WRENN_HOST_TOKEN;
        // With a control plane the token comes from registration; until then nobody knows this one.
        if (!token && o.controlPlane) token = randomBytes(24).toString('hex');
        if (!token)
          throw new WrennError(
            'invalid_argument',
            'pass --token <token> (or set WRENN_HOST_TOKEN), or --register with --control-plane',
          );
        // Loaded on use: the agent's modules would slow every other command's start.
        const agent = await (await import('@wrenn/agent')).startAgent({
          dir,
          host: o.host,
          port,
          hostToken: token,
          pauseOnShutdown: o.pauseOnShutdown,
          ...(o.controlPlane ? { controlPlaneUrl: o.controlPlane } : {}),
          ...(o.register ? { registrationToken: o.register } : {}),
        });
        process.stdout.write(`${JSON.stringify({ event: 'agent-ready', url: agent.url })}\n`);
        await new Promise<void>((resolve) => {
          const stop = () => {
            process.off('SIGTERM', stop);
            process.off('SIGINT', stop);
            void agent.close().then(resolve, (e) => {
              process.stderr.write(`wrenn agent: close failed: ${(e as Error).message}\n`);
              process.exitCode = 1;
              resolve();
            });
          };
          process.on('SIGTERM', stop);
          process.on('SIGINT', stop);
        });
        // VMs outlive us by design; nothing else may hold the process open.
        process.exit(process.exitCode ?? 0);
      },
    );
}
