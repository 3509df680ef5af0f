import { chmod, chown, copyFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { requireTool, run, TOOLS } from '../exec.ts';

export const USER_UID = 1000;
export const USER_GID = 1000;

const FILES: Record<string, { mode: number; text: string }> = {
  'etc/passwd': {
    mode: 0o644,
    text: 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n',
  },
  'etc/group': { mode: 0o644, text: 'root:x:0:\ntty:x:5:\nuser:x:1000:\n' },
  'etc/shadow': { mode: 0o600, text: 'root:*:19000:0:99999:7:::\nuser:*:19000:0:99999:7:::\n' },
  'etc/hostname': { mode: 0o644, text: 'wrenn\n' },
  'etc/hosts': { mode: 0o644, text: '127.0.0.1 localhost\n127.0.1.1 wrenn\n::1 localhost\n' },
  'etc/resolv.conf': { mode: 0o644, text: 'nameserver 10.0.2.3\n' },
};

const DIRS: Record<string, number> = {
  bin: 0o755,
  sbin: 0o755,
  'usr/bin': 0o755,
  'usr/sbin': 0o755,
  'usr/local/bin': 0o755,
  etc: 0o755,
  dev: 0o755,
  proc: 0o555,
  sys: 0o555,
  run: 0o755,
  tmp: 0o1777,
  'var/tmp': 0o1777,
  root: 0o700,
  home: 0o755,
  'home/user': 0o755,
};

/**
 * The `minimal` userland: static busybox with a symlink per applet at its usual path,
 * root and `user` accounts. The runtime and init are added by the caller (installRuntime).
 */
export async function populateMinimal(root: string, busybox: string): Promise<void> {
  for (const [d, mode] of Object.entries(DIRS)) {
    await mkdir(join(root, d), { recursive: true });
    await chmod(join(root, d), mode);
  }
  for (const [f, { mode, text }] of Object.entries(FILES)) {
    await writeFile(join(root, f), text, { mode });
  }
  const { stdout } = await run(TOOLS.busybox, await requireTool(TOOLS.busybox), ['--list-full']);
  await copyFile(busybox, join(root, 'bin', 'busybox'));
  await chmod(join(root, 'bin', 'busybox'), 0o755);
  for (const applet of stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)) {
    if (applet === 'bin/busybox') continue;
    await mkdir(dirname(join(root, applet)), { recursive: true });
    await symlink('/bin/busybox', join(root, applet)).catch((e) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
  if (process.getuid?.() === 0) await chown(join(root, 'home', 'user'), USER_UID, USER_GID);
}
