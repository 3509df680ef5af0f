import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileNotFoundError, FilesystemEventType, type Sandbox } from 'e2b';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, type HostEnvd, rawClients, sdk, startHostEnvd } from '../helpers.ts';

let envd: HostEnvd;
let sbx: Sandbox;
let home: string;

beforeAll(async () => {
  envd = await startHostEnvd();
  sbx = sdk(envd);
  home = join(envd.homeRoot, 'root');
  await sbx.files.makeDir('.'); // host mode creates the home on first use
});
afterAll(async () => {
  await envd?.stop();
});

describe('filesystem through the e2b SDK', () => {
  it('stats a file with every EntryInfo field; relative paths resolve against home', async () => {
    await writeFile(join(home, 'info.txt'), 'twelve bytes');
    const e = await sbx.files.getInfo('info.txt');
    expect(e).toMatchObject({
      name: 'info.txt',
      type: 'file',
      path: join(home, 'info.txt'),
      size: 12,
      mode: 0o644,
      permissions: '-rw-r--r--',
      owner: 'root',
      group: 'root',
    });
    expect(e.modifiedTime).toBeInstanceOf(Date);
    expect(Math.abs(e.modifiedTime!.getTime() - Date.now())).toBeLessThan(60_000);
  });

  it('reports symlinks with their target', async () => {
    await writeFile(join(home, 'target.txt'), 'x');
    await symlink(join(home, 'target.txt'), join(home, 'link'));
    const e = await sbx.files.getInfo('link');
    expect(e.type).toBe('symlink');
    expect(e.symlinkTarget).toBe(join(home, 'target.txt'));
  });

  it('makeDir creates parents and returns false when the directory exists', async () => {
    expect(await sbx.files.makeDir('deep/er/dir')).toBe(true);
    expect(await sbx.files.makeDir('deep/er/dir')).toBe(false);
    expect((await sbx.files.getInfo('deep/er')).type).toBe('dir');
  });

  it('lists one level by default and deeper with depth', async () => {
    await mkdir(join(home, 'tree/a/b'), { recursive: true });
    await writeFile(join(home, 'tree/top.txt'), '');
    await writeFile(join(home, 'tree/a/mid.txt'), '');
    await writeFile(join(home, 'tree/a/b/low.txt'), '');
    const one = await sbx.files.list('tree');
    expect(one.map((e) => e.name).sort()).toEqual(['a', 'top.txt']);
    const two = await sbx.files.list('tree', { depth: 2 });
    expect(two.map((e) => e.path.slice(home.length + 1)).sort()).toEqual([
      'tree/a',
      'tree/a/b',
      'tree/a/mid.txt',
      'tree/top.txt',
    ]);
    const three = await sbx.files.list('tree', { depth: 3 });
    expect(three.map((e) => e.name)).toContain('low.txt');
  });

  it('renames, removes and answers exists', async () => {
    await sbx.files.write('mv/src.txt', 'data');
    const moved = await sbx.files.rename('mv/src.txt', 'mv/sub/dst.txt');
    expect(moved.path).toBe(join(home, 'mv/sub/dst.txt'));
    expect(await sbx.files.exists('mv/src.txt')).toBe(false);
    expect(await sbx.files.read('mv/sub/dst.txt')).toBe('data');
    await sbx.files.remove('mv');
    expect(await sbx.files.exists('mv/sub/dst.txt')).toBe(false);
  });

  it('maps a missing path to FileNotFoundError on every call', async () => {
    await expect(sbx.files.getInfo('nope')).rejects.toBeInstanceOf(FileNotFoundError);
    await expect(sbx.files.list('nope')).rejects.toBeInstanceOf(FileNotFoundError);
    await expect(sbx.files.remove('nope')).rejects.toBeInstanceOf(FileNotFoundError);
    await expect(sbx.files.rename('nope', 'other')).rejects.toBeInstanceOf(FileNotFoundError);
    await expect(sbx.files.read('nope')).rejects.toBeInstanceOf(FileNotFoundError);
  });

  it('watches a directory: create, write, rename and remove', async () => {
    await sbx.files.makeDir('w');
    const events: { type: FilesystemEventType; name: string }[] = [];
    const handle = await sbx.files.watchDir(
      'w',
      (e) => void events.push({ type: e.type, name: e.name }),
    );
    await writeFile(join(home, 'w/f.txt'), 'one');
    await eventually(() =>
      events.some((e) => e.type === FilesystemEventType.CREATE && e.name === 'f.txt'),
    );
    await writeFile(join(home, 'w/f.txt'), 'two');
    await eventually(() =>
      events.some((e) => e.type === FilesystemEventType.WRITE && e.name === 'f.txt'),
    );
    await sbx.files.rename('w/f.txt', 'w/g.txt');
    await eventually(() =>
      events.some((e) => e.type === FilesystemEventType.RENAME && e.name === 'f.txt'),
    );
    await eventually(() =>
      events.some((e) => e.type === FilesystemEventType.CREATE && e.name === 'g.txt'),
    );
    await sbx.files.remove('w/g.txt');
    await eventually(() =>
      events.some((e) => e.type === FilesystemEventType.REMOVE && e.name === 'g.txt'),
    );
    await handle.stop();
    // A rename is not also reported as a removal.
    expect(events.some((e) => e.type === FilesystemEventType.REMOVE && e.name === 'f.txt')).toBe(
      false,
    );
  });

  it('watches recursively, including directories created after the watch began', async () => {
    await sbx.files.makeDir('rw');
    const names: string[] = [];
    const handle = await sbx.files.watchDir('rw', (e) => void names.push(`${e.type}:${e.name}`), {
      recursive: true,
    });
    await mkdir(join(home, 'rw/new/inner'), { recursive: true });
    await eventually(() => names.includes('create:new'));
    await eventually(async () => {
      await writeFile(join(home, 'rw/new/inner/x.txt'), String(Math.random()));
      return names.some((n) => n.endsWith(':new/inner/x.txt'));
    });
    await handle.stop();
  });

  it('includes entry info in watch events when asked', async () => {
    await sbx.files.makeDir('we');
    const entries: (string | undefined)[] = [];
    const handle = await sbx.files.watchDir('we', (e) => void entries.push(e.entry?.path), {
      includeEntry: true,
    });
    await writeFile(join(home, 'we/e.txt'), 'x');
    await eventually(() => entries.includes(join(home, 'we/e.txt')));
    await handle.stop();
  });

  it('rejects watching a missing path', async () => {
    await expect(sbx.files.watchDir('missing-dir', () => {})).rejects.toBeInstanceOf(
      FileNotFoundError,
    );
  });
});

describe('polling watchers over raw Connect', () => {
  it('CreateWatcher collects events that GetWatcherEvents drains; RemoveWatcher ends it', async () => {
    const { filesystem: fs } = rawClients(envd, { binary: true });
    await mkdir(join(home, 'pw'), { recursive: true });
    const { watcherId } = await fs.createWatcher({ path: join(home, 'pw'), recursive: false });
    await writeFile(join(home, 'pw/a'), '1');
    const got = await eventually(async () => {
      const { events } = await fs.getWatcherEvents({ watcherId });
      return events.find((e) => e.name === 'a' && e.type === 1) ? events : undefined;
    });
    expect(got!.length).toBeGreaterThan(0);
    // Drained: the CREATE is not delivered twice (a late WRITE for the same file may follow).
    const again = (await fs.getWatcherEvents({ watcherId })).events;
    expect(again.some((e) => e.name === 'a' && e.type === 1)).toBe(false);
    await fs.removeWatcher({ watcherId });
    const e = await fs.getWatcherEvents({ watcherId }).catch((x) => x);
    expect(e.code).toBe(5);
  });

  it('MakeDir on an existing path is already_exists; ListDir of a file is invalid_argument', async () => {
    const { filesystem: fs } = rawClients(envd);
    await writeFile(join(home, 'plain'), '');
    expect((await fs.makeDir({ path: join(home, 'plain') }).catch((x) => x)).code).toBe(6);
    expect((await fs.listDir({ path: join(home, 'plain'), depth: 1 }).catch((x) => x)).code).toBe(
      3,
    );
  });
});
