import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { layout } from '@wrenn/common';
import { buildImage } from '@wrenn/images';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

const execFileP = promisify(execFile);
const WRENN = resolve(import.meta.dirname, '../../../cli/bin/wrenn.mjs');
const wrennDir = inject('wrennDir');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function wrenn(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [WRENN, ...args],
      { env, timeout: 120_000 },
      (err, stdout, stderr) => {
        done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

/** Run the CLI as user `nobody` (65534), as a non-root user would. */
function asNobody(args: string[], home: string): Promise<Run> {
  return new Promise((done) =>
    execFile(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, WRENN, ...args],
      { env: { ...process.env, HOME: home }, timeout: 300_000 },
      (err, stdout, stderr) =>
        done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

let empty: string;
beforeAll(async () => {
  empty = await mkdtemp(join(tmpdir(), 'wrenn-cli-images-'));
  await chmod(empty, 0o755); // `nobody` must reach its own directory inside
});
afterAll(() => rm(empty, { recursive: true, force: true }));

describe('wrenn images / doctor on the command line', () => {
  it('an unknown image name is one clear error line and a non-zero exit', async () => {
    const r = await wrenn(['--dir', empty, 'images', 'build', 'nope']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toBe(
      "wrenn: invalid_argument: unknown image 'nope': known images are minimal, base\n",
    );
  });

  it('a missing tool names the Debian package to install', async () => {
    // No PATH: busybox (from /usr/bin) cannot be found; sbin tools still can.
    const r = await wrenn(['--dir', empty, 'images', 'build', 'minimal', '--quiet'], {
      ...process.env,
      PATH: '/nonexistent',
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /^wrenn: failed_precondition: busybox not found: install the Debian package busybox-static/,
    );
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('building base without root says root is needed, and writes nothing', async () => {
    const r = await new Promise<Run>((done) =>
      execFile(
        'setpriv',
        [
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          process.execPath,
          WRENN,
          '--dir',
          join(empty, 'nobody'),
          'images',
          'build',
          'base',
        ],
        { env: { ...process.env, HOME: empty, TSX_TSCONFIG_PATH: undefined } },
        (err, stdout, stderr) =>
          done({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      ),
    );
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/^wrenn: permission_denied: building the base image needs root/);
    expect((await wrenn(['--dir', join(empty, 'nobody'), 'images', 'ls', '--json'])).stdout).toBe(
      '[]\n',
    );
  });

  it("minimal builds without root, and the image still has root-owned files and user's home", async () => {
    const home = join(empty, 'unprivileged');
    await mkdir(home);
    await chown(home, 65534, 65534);
    const r = await asNobody(
      ['--dir', join(home, 'w'), 'images', 'build', 'minimal', '--quiet'],
      home,
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^minimal: built /);
    const rootfs = join(home, 'w', 'images', 'public', 'minimal', 'rootfs.ext4');
    const owner = async (path: string) => {
      const { stdout } = await execFileP('debugfs', ['-R', `stat ${path}`, rootfs]);
      return stdout
        .match(/User:\s+(\d+)\s+Group:\s+(\d+)/)
        ?.slice(1, 3)
        .map(Number);
    };
    expect(await owner('/home/user')).toEqual([1000, 1000]);
    expect(await owner('/opt/wrenn/runtime/node')).toEqual([0, 0]);
    expect(await owner('/etc/shadow')).toEqual([0, 0]);
  });

  it('images ls --json lists the built test images as valid', async () => {
    const r = await wrenn(['--dir', wrennDir, 'images', 'ls', '--json']);
    expect(r.code).toBe(0);
    const list = JSON.parse(r.stdout) as { team: string; name: string; valid: boolean }[];
    const pub = list.filter((i) => i.team === 'public').map((i) => [i.name, i.valid]);
    expect(pub).toEqual(
      expect.arrayContaining([
        ['base', true],
        ['minimal', true],
      ]),
    );
  });

  it('images build of an up-to-date image is a no-op', async () => {
    // A private WRENN_DIR (kernel cache shared): other test runs may rebuild the shared one.
    const dir = join(empty, 'noop');
    await buildImage('minimal', { dir, cacheDir: layout(wrennDir).cache });
    const r = await wrenn(['--dir', dir, 'images', 'build', 'minimal', '--quiet']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^minimal: cached .*\/images\/public\/minimal\/rootfs\.ext4 kernel \S+cloud-amd64\n$/,
    );
  });

  it('doctor --json reports a usable accelerator and exits 0 on this machine', async () => {
    const r = await wrenn(['--dir', wrennDir, 'doctor', '--json']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as {
      canRun: boolean;
      accelerator: string;
      checks: { name: string; status: string }[];
    };
    expect(report.canRun).toBe(true);
    expect(['kvm', 'tcg']).toContain(report.accelerator);
    expect(report.checks.map((c) => c.name)).toEqual(
      expect.arrayContaining([
        'qemu',
        'kvm',
        'accelerator',
        'disk free',
        'root',
        'netns',
        'nftables',
      ]),
    );
  });
});
