import { execFileSync } from 'node:child_process';
import { chmod, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Sandbox } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, type HostEnvd, rawClients, sdk, startHostEnvd } from '../helpers.ts';

// A real Linux user (and a supplementary group) made for this file and removed after it.
const suffix = Math.random().toString(36).slice(2, 8);
const USER = `wrenn-u-${suffix}`;
const GROUP = `wrenn-g-${suffix}`;
const LATER_GROUP = `wrenn-l-${suffix}`;
let uid = 0;
let gid = 0;
let extraGid = 0;
let envd: HostEnvd;
let sbx: Sandbox;

beforeAll(async () => {
  expect(process.getuid?.(), 'this test creates users and must run as root').toBe(0);
  execFileSync('groupadd', [GROUP]);
  execFileSync('useradd', ['-M', '-U', '-s', '/bin/sh', '-G', GROUP, USER]);
  uid = Number(execFileSync('id', ['-u', USER]).toString());
  gid = Number(execFileSync('id', ['-g', USER]).toString());
  extraGid = Number(execFileSync('getent', ['group', GROUP]).toString().split(':')[2]);
  envd = await startHostEnvd([], { defaultUser: USER });
  sbx = sdk(envd);
});
afterAll(async () => {
  await envd?.stop();
  try {
    execFileSync('userdel', [USER]);
  } finally {
    execFileSync('groupdel', [GROUP]);
    execFileSync('groupdel', [LATER_GROUP], { stdio: 'ignore' }); // only if its test made it
  }
});

describe('commands and files run as the requested Linux user', () => {
  it('the default user gets its uid, gid, supplementary groups and login environment', async () => {
    const r = await sbx.commands.run('id -u; id -g; id -G; echo "$HOME|$USER|$LOGNAME"; pwd');
    const [u, g, groups, env, pwd] = r.stdout.trim().split('\n');
    expect(Number(u)).toBe(uid);
    expect(Number(g)).toBe(gid);
    expect(groups!.split(' ').map(Number).sort()).toEqual([gid, extraGid].sort());
    const home = join(envd.homeRoot, USER);
    expect(env).toBe(`${home}|${USER}|${USER}`);
    expect(pwd).toBe(home);
  });

  it('sees /etc/group change while envd runs: a group added after a command applies to the next', async () => {
    const before = await sbx.commands.run('id -G');
    execFileSync('groupadd', [LATER_GROUP]);
    execFileSync('usermod', ['-a', '-G', LATER_GROUP, USER]);
    const laterGid = Number(
      execFileSync('getent', ['group', LATER_GROUP]).toString().split(':')[2],
    );
    const after = await sbx.commands.run('id -G');
    expect(before.stdout.trim().split(' ').map(Number)).not.toContain(laterGid);
    expect(after.stdout.trim().split(' ').map(Number).sort()).toEqual(
      [gid, extraGid, laterGid].sort(),
    );
    execFileSync('gpasswd', ['-d', USER, LATER_GROUP], { stdio: 'ignore' });
    const removed = await sbx.commands.run('id -G');
    expect(removed.stdout.trim().split(' ').map(Number)).not.toContain(laterGid);
  });

  it("a PTY also gets the user and its groups (not root's)", async () => {
    let out = '';
    const term = await sbx.pty.create({
      cols: 80,
      rows: 24,
      onData: (d) => {
        out += new TextDecoder().decode(d);
      },
    });
    await sbx.pty.sendInput(
      term.pid,
      new TextEncoder().encode('echo "ids:$(id -u):$(id -G)"; exit\n'),
    );
    await term.wait().catch(() => undefined);
    const m = /ids:(\d+):([\d ]+)/.exec(out);
    expect(Number(m![1])).toBe(uid);
    expect(m![2]!.trim().split(' ').map(Number).sort()).toEqual([gid, extraGid].sort());
  });

  it('user: root overrides the default (Basic auth username)', async () => {
    const r = await sbx.commands.run('id -u', { user: 'root' });
    expect(r.stdout.trim()).toBe('0');
  });

  it('files written for the user belong to the user', async () => {
    const info = await sbx.files.write('owned/file.txt', 'mine');
    const st = await stat(info.path);
    expect([st.uid, st.gid]).toEqual([uid, gid]);
    expect((await stat(join(envd.homeRoot, USER, 'owned'))).uid).toBe(uid);
    expect((await sbx.files.getInfo('owned/file.txt')).owner).toBe(USER);
  });

  it("/files ?username= picks the user: a root upload lands in root's home, owned by root", async () => {
    const info = await sbx.files.write('by-root.txt', 'r', { user: 'root' });
    expect(info.path).toBe(join(envd.homeRoot, 'root', 'by-root.txt'));
    expect((await stat(info.path)).uid).toBe(0);
    expect(await sbx.files.read('by-root.txt', { user: 'root' })).toBe('r');
    await expect(sbx.files.read('by-root.txt')).rejects.toThrow(); // not in the default user's home
  });

  it('denies what the user may not touch: permission_denied on RPC, 403 on /files', async () => {
    const secret = join(envd.homeRoot, 'root-only');
    await mkdir(secret, { recursive: true });
    await chmod(secret, 0o700);
    const { filesystem: fs } = rawClients(envd);
    const e = await fs.listDir({ path: secret, depth: 1 }).catch((x) => x);
    expect(e.code).toBe(7); // PermissionDenied
    const up = await fetch(`${envd.url}/files?path=${encodeURIComponent(join(secret, 'x'))}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: 'x',
    });
    expect(up.status).toBe(403);
    expect(((await up.json()) as { code: string }).code).toBe('permission_denied');
    // root may
    expect(await sbx.files.list(secret, { user: 'root' })).toEqual([]);
    const run = await sbx.commands.run(`ls ${secret}`).catch((x) => x);
    expect(run.exitCode).not.toBe(0);
  });

  it('an unknown user is rejected as unauthenticated', async () => {
    const { process: rpc } = rawClients(envd, {
      headers: { authorization: `Basic ${Buffer.from('nobody-here:').toString('base64')}` },
    });
    const e = await rpc.list({}).catch(() => undefined); // List has no user: allowed
    expect(e).toBeDefined();
    const s = await (async () => {
      for await (const _ of rpc.start({ process: { cmd: '/bin/true' } })) {
      }
    })().catch((x) => x);
    expect(s.code).toBe(16); // Unauthenticated
  });

  it('/init defaultUser switches who runs commands; an unknown one is refused and changes nothing', async () => {
    const bad = await fetch(`${envd.url}/init`, {
      method: 'POST',
      body: JSON.stringify({ defaultUser: 'no-such-user-x' }),
    });
    expect(bad.status).toBe(401);
    expect((await sbx.commands.run('id -u')).stdout.trim()).toBe(String(uid));
    const ok = await fetch(`${envd.url}/init`, {
      method: 'POST',
      body: JSON.stringify({ defaultUser: 'root' }),
    });
    expect(ok.status).toBe(204);
    await eventually(async () => (await sbx.commands.run('id -u')).stdout.trim() === '0');
    await fetch(`${envd.url}/init`, {
      method: 'POST',
      body: JSON.stringify({ defaultUser: USER }),
    });
  });
});
