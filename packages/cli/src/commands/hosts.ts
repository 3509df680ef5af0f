import type { Command } from 'commander';
import { addApiOptions, clientFor } from '../client-config.ts';
import { output, printTable } from '../output.ts';

/** `wrenn hosts [ls|token|rm]` (admin key). */
export function registerHostsCommands(program: Command): void {
  const h = program
    .command('hosts')
    .alias('host')
    .description('host agents in the cluster (admin)');
  addApiOptions(h.command('ls', { isDefault: true }).alias('list'))
    .description('list hosts with capacity, load and status')
    .action(async (o, cmd: Command) => {
      const hosts = await clientFor(cmd).hosts.list();
      output(o.json, hosts, () =>
        printTable(
          hosts.map((x) => ({
            id: x.hostId,
            status: x.status,
            url: x.agentUrl,
            vcpus: `${x.load.vcpusUsed}/${x.capacity.vcpus}`,
            memoryMb: `${x.load.memoryUsedMb}/${x.capacity.memoryMb}`,
            diskMb: `${x.load.diskUsedMb}/${x.capacity.diskMb}`,
            running: x.load.sandboxesRunning,
            paused: x.load.sandboxesPaused,
            accel: x.accelerator,
            heartbeat: x.lastHeartbeatAt,
          })),
          [
            'id',
            'status',
            'url',
            'vcpus',
            'memoryMb',
            'diskMb',
            'running',
            'paused',
            'accel',
            'heartbeat',
          ],
        ),
      );
    });
  addApiOptions(h.command('token'))
    .description('create a one-time registration token for `wrenn agent --register`')
    .action(async (o, cmd: Command) => {
      const client = clientFor(cmd);
      const t = await client.hosts.createToken();
      output(o.json, t, () => {
        process.stdout.write(`${t.token}\n`);
        process.stderr.write(
          `expires ${t.expiresAt}; on the new host run:\n  wrenn agent --register ${t.token} --control-plane ${client.apiUrl} --host 0.0.0.0\n`,
        );
      });
    });
  addApiOptions(h.command('rm').alias('delete').argument('<host-id>'))
    .description('remove a host that holds no sandboxes')
    .action(async (id: string, o, cmd: Command) => {
      await clientFor(cmd).hosts.delete(id);
      output(o.json, { hostId: id, deleted: true }, () => process.stdout.write(`${id} removed\n`));
    });
}
