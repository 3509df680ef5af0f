import { Sandbox } from 'e2b';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { bootImage, type TestVm } from '../../../../test/helpers/vm.ts';

// envd as the image's init starts it inside a real `minimal` VM (TCG), driven by the
// official SDK through the forwarded envd port.
let vm: TestVm;
let sbx: Sandbox;

beforeAll(async () => {
  const wrennDir = inject('wrennDir');
  if (!wrennDir)
    throw new Error('test/global-setup.ts did not provide wrennDir (built guest images)');
  vm = await bootImage({ wrennDir, image: 'minimal' });
  const Ctor = Sandbox as unknown as new (o: Record<string, unknown>) => Sandbox;
  sbx = new Ctor({ sandboxId: 'vm', envdVersion: '0.6.4', debug: true, sandboxUrl: vm.envdUrl });
});
afterAll(async () => {
  await vm?.kill();
});

describe('envd inside a minimal VM', () => {
  it('reports its startup time on the console', () => {
    const m = /"msg":"envd listening".*"startup_ms":(\d+)/.exec(vm.console());
    expect(m, `console:\n${vm.console()}`).not.toBeNull();
    console.log(`envd startup in the guest (node start → listening): ${m![1]} ms`);
    expect(Number(m![1])).toBeGreaterThan(0);
  });

  it('runs a command as the default user `user` (busybox sh stands in for bash)', async () => {
    const r = await sbx.commands.run('echo "hi $(id -u):$(id -g) $HOME"; uname -s');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('hi 1000:1000 /home/user\nLinux\n');
  });

  it('runs as root when asked, and reports a failing exit code', async () => {
    expect((await sbx.commands.run('id -u', { user: 'root' })).stdout).toBe('0\n');
    const e = await sbx.commands.run('exit 3').catch((x) => x);
    expect(e.exitCode).toBe(3);
  });

  it('/init timestamp moves the guest clock forward (as after a restore)', async () => {
    const ahead = Math.floor(Date.now() / 1000) + 3600;
    const r = await fetch(`${vm.envdUrl}/init`, {
      method: 'POST',
      body: JSON.stringify({ timestamp: new Date(ahead * 1000).toISOString() }),
    });
    expect(r.status).toBe(204);
    const guestNow = Number((await sbx.commands.run('date +%s')).stdout.trim());
    expect(guestNow).toBeGreaterThanOrEqual(ahead);
    expect(guestNow).toBeLessThan(ahead + 600);
  });

  it('writes and reads a file owned by the user', async () => {
    await sbx.files.write('hello.txt', 'from the host');
    expect(await sbx.files.read('/home/user/hello.txt')).toBe('from the host');
    expect((await sbx.files.getInfo('hello.txt')).owner).toBe('user');
  });
});
