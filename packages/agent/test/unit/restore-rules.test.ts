import { mkdir, readdir, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { layout } from '@wrenn/common';
import { afterEach, describe, expect, it } from 'vitest';
import { createSandbox } from '../../src/lifecycle/create.ts';
import { destroySandbox } from '../../src/lifecycle/destroy.ts';
import { recover } from '../../src/startup/index.ts';
import { restorePaused } from '../../src/startup/restore.ts';
import { sweepStagingAndTrash } from '../../src/startup/sweep.ts';
import { OVERLAY, PAUSE_META } from '../../src/store.ts';
import { FakeDriver } from '../support/fake-driver.ts';
import {
  fabricatePaused,
  fabricateWrennDir,
  newManager,
  removeWrennDir,
  silentLog,
} from '../support/fixtures.ts';

const dirs: string[] = [];
afterEach(async () => {
  await FakeDriver.killAll();
  for (const d of dirs.splice(0)) await removeWrennDir(d);
});

async function wrennDir() {
  const d = await fabricateWrennDir();
  dirs.push(d);
  return d;
}

const ls = async (dir: string) => (await readdir(layout(dir).sandboxes)).sort();
const trashed = (names: string[], id: string) => names.some((n) => n.startsWith(`${id}.trash-`));

/**
 * The seed's restore rules, each on a fabricated WRENN_DIR: what the dir holds → which
 * sandboxes are restored as paused and which dirs are trashed.
 */
interface Case {
  name: string;
  setup: (dir: string) => Promise<void>;
  restored: string[];
  trashed: string[];
  /** Extra checks on the dir after restore. */
  check?: (dir: string, names: string[]) => Promise<void> | void;
  maxSlots?: number;
}

const cases: Case[] = [
  {
    name: 'a well-formed paused sandbox is restored',
    setup: (d) => fabricatePaused(d, 'good1').then(() => undefined),
    restored: ['good1'],
    trashed: [],
  },
  {
    name: 'unreadable meta (garbage bytes) is trashed',
    setup: async (d) => {
      await fabricatePaused(d, 'garbage1');
      await writeFile(join(layout(d).sandbox('garbage1'), PAUSE_META), '\x00\x01{not json');
    },
    restored: [],
    trashed: ['garbage1'],
  },
  {
    name: 'meta that is JSON but not a meta (wrong types) is trashed',
    setup: (d) => fabricatePaused(d, 'wrongtypes', { vcpus: 'two' } as never).then(() => undefined),
    restored: [],
    trashed: ['wrongtypes'],
  },
  {
    name: 'a dir with no meta at all (a crashed create) is trashed',
    setup: async (d) => {
      await mkdir(layout(d).sandbox('nometa'), { recursive: true });
      await writeFile(join(layout(d).sandbox('nometa'), OVERLAY), 'x');
    },
    restored: [],
    trashed: ['nometa'],
  },
  {
    name: 'missing slot index is trashed',
    setup: (d) => fabricatePaused(d, 'noslot', {}, { omit: ['slot_index'] }).then(() => undefined),
    restored: [],
    trashed: ['noslot'],
  },
  {
    name: 'slot index 0 counts as missing and is trashed',
    setup: (d) => fabricatePaused(d, 'slotzero', { slot_index: 0 }).then(() => undefined),
    restored: [],
    trashed: ['slotzero'],
  },
  {
    name: 'bad team id is trashed',
    setup: (d) => fabricatePaused(d, 'badteam', { team_id: 'Team/../x' }).then(() => undefined),
    restored: [],
    trashed: ['badteam'],
  },
  {
    name: 'bad template id is trashed',
    setup: (d) => fabricatePaused(d, 'badtpl', { template_id: '' }).then(() => undefined),
    restored: [],
    trashed: ['badtpl'],
  },
  {
    name: 'a meta naming another sandbox is trashed',
    setup: (d) => fabricatePaused(d, 'copied', { sandbox_id: 'original' }).then(() => undefined),
    restored: [],
    trashed: ['copied'],
  },
  {
    name: 'a truncated memory file makes the snapshot corrupt: trashed',
    setup: async (d) => {
      await fabricatePaused(d, 'truncated');
      await truncate(join(layout(d).sandbox('truncated'), 'memory'), 3);
    },
    restored: [],
    trashed: ['truncated'],
  },
  {
    name: 'a missing overlay makes the snapshot corrupt: trashed',
    setup: async (d) => {
      await fabricatePaused(d, 'nooverlay');
      await unlink(join(layout(d).sandbox('nooverlay'), OVERLAY));
    },
    restored: [],
    trashed: ['nooverlay'],
  },
  {
    name: 'two dirs for one slot: the newest created_at wins, the older is trashed',
    setup: async (d) => {
      await fabricatePaused(d, 'older', { slot_index: 3, created_at: '2026-01-01T00:00:00.000Z' });
      await fabricatePaused(d, 'newer', { slot_index: 3, created_at: '2026-02-01T00:00:00.000Z' });
      await fabricatePaused(d, 'other', { slot_index: 4, created_at: '2025-01-01T00:00:00.000Z' });
    },
    restored: ['newer', 'other'],
    trashed: ['older'],
  },
  {
    name: 'slot reservation failure (slot beyond the allocator) trashes the winner',
    setup: (d) => fabricatePaused(d, 'farslot', { slot_index: 99 }).then(() => undefined),
    maxSlots: 16,
    restored: [],
    trashed: ['farslot'],
  },
  {
    name: 'staging and trash dirs are left alone by restore',
    setup: async (d) => {
      await fabricatePaused(d, 'kept');
      await fabricatePaused(d, 'kept.staging-123');
      await mkdir(join(layout(d).sandboxes, 'gone.trash-456'));
    },
    restored: ['kept'],
    trashed: [],
    check: (_d, names) => {
      expect(names).toContain('kept.staging-123');
      expect(names).toContain('gone.trash-456');
    },
  },
  {
    name: 'one bad sandbox never stops the others',
    setup: async (d) => {
      await fabricatePaused(d, 'fine1', { slot_index: 1 });
      await fabricatePaused(d, 'broken', { slot_index: 2 });
      await writeFile(join(layout(d).sandbox('broken'), PAUSE_META), '{');
      await fabricatePaused(d, 'fine2', { slot_index: 5 });
    },
    restored: ['fine1', 'fine2'],
    trashed: ['broken'],
  },
];

describe('restore rules on fabricated WRENN_DIRs', () => {
  for (const c of cases) {
    it(c.name, async () => {
      const dir = await wrennDir();
      await c.setup(dir);
      const driver = new FakeDriver();
      const m = newManager(dir, driver, { maxSlots: c.maxSlots ?? 16 });
      const report = await restorePaused(m);

      expect(report.restored.sort()).toEqual([...c.restored].sort());
      expect(report.trashed.map((t) => t.dir).sort()).toEqual([...c.trashed].sort());
      const names = await ls(dir);
      for (const id of c.trashed) {
        expect(names).not.toContain(id);
        expect(trashed(names, id)).toBe(true);
      }
      for (const id of c.restored) {
        const sb = m.get(id);
        expect(sb.status).toBe('paused');
        // INVARIANT: a restored sandbox owns only its slot.
        expect(sb.vm).toBeUndefined();
        expect(sb.baseImage).toBeUndefined();
        expect(m.slots.isHeld(sb.slot)).toBe(true);
        expect(names).toContain(id);
      }
      expect(m.boxes.size).toBe(c.restored.length);
      expect(m.slots.used).toBe(c.restored.length);
      // Restore never starts, adopts or kills a VM.
      expect(driver.calls).toEqual([]);
      await c.check?.(dir, names);
    });
  }

  it('slot reservation failure when a re-adopted running sandbox holds the slot trashes the paused one', async () => {
    const dir = await wrennDir();
    const driver = new FakeDriver();
    const first = newManager(dir, driver);
    const running = await createSandbox(first, {
      sandboxId: 'runner',
      teamId: 'public',
      templateId: 'minimal',
    });
    await fabricatePaused(dir, 'clash', {
      slot_index: running.slot,
      created_at: '2030-01-01T00:00:00.000Z',
    });

    // A second manager on the same dir is the restarted agent (same port base: same slots).
    const second = newManager(dir, driver);
    Object.defineProperty(second.slots, 'portBase', { value: first.slots.portBase });
    const report = await recover(second);
    expect(report.readopt.adopted).toEqual(['runner']);
    expect(report.restore.trashed.map((t) => t.dir)).toEqual(['clash']);
    expect(report.restore.trashed[0]!.reason).toMatch(/reservation failed/);
    expect(second.get('runner').status).toBe('running');
    expect(() => second.get('clash')).toThrow(/not found/);
  });

  it('the sweep removes staging and trash dirs, and restore then sees none of them', async () => {
    const dir = await wrennDir();
    await fabricatePaused(dir, 'live1');
    await fabricatePaused(dir, 'live1.staging-100'); // its live dir exists: an abandoned pause
    await mkdir(join(layout(dir).sandboxes, 'live1.trash-200'));
    await mkdir(join(layout(dir).sandboxes, 'x.staging-300')); // incomplete: no meta
    const report = await sweepStagingAndTrash(dir, silentLog);
    expect(report.removed.sort()).toEqual([
      'live1.staging-100',
      'live1.trash-200',
      'x.staging-300',
    ]);
    expect(report.promoted).toEqual([]);
    expect(await ls(dir)).toEqual(['live1']);
  });

  it('the sweep promotes a complete staging dir whose live dir a crash left missing', async () => {
    const dir = await wrennDir();
    // A pause that died between trash-live and promote-staging.
    await fabricatePaused(dir, 'mid.staging-500');
    await writeFile(
      join(layout(dir).sandbox('mid.staging-500'), PAUSE_META),
      JSON.stringify({
        ...JSON.parse(
          await (await import('node:fs/promises')).readFile(
            join(layout(dir).sandbox('mid.staging-500'), PAUSE_META),
            'utf8',
          ),
        ),
        sandbox_id: 'mid',
      }),
    );
    await mkdir(join(layout(dir).sandboxes, 'mid.trash-400'));
    const sweep = await sweepStagingAndTrash(dir, silentLog);
    expect(sweep.promoted).toEqual(['mid.staging-500']);
    expect(await ls(dir)).toEqual(['mid']);
    const m = newManager(dir, new FakeDriver());
    expect((await restorePaused(m)).restored).toEqual(['mid']);
  });

  it('destroy of a restored-but-never-resumed sandbox releases nothing it does not own', async () => {
    const dir = await wrennDir();
    const driver = new FakeDriver();
    const m = newManager(dir, driver);
    // A running sandbox on the same template holds one base-image reference.
    const running = await createSandbox(m, {
      sandboxId: 'alive',
      teamId: 'public',
      templateId: 'minimal',
    });
    const base = running.baseImage!;
    expect(m.baseRefs.count(base)).toBe(1);
    await fabricatePaused(dir, 'restored1', { slot_index: 9, team_id: 'public', base_image: base });
    await restorePaused(m);
    expect(m.get('restored1').status).toBe('paused');
    driver.calls.length = 0;

    await destroySandbox(m, 'restored1');

    expect(m.baseRefs.count(base)).toBe(1); // the running sandbox's reference is intact
    expect(driver.calls.filter((c) => c.op === 'kill')).toEqual([]); // it had no VM
    expect(m.slots.isHeld(9)).toBe(false); // its slot — the one thing it owned — is free
    expect(m.slots.isHeld(running.slot)).toBe(true);
    expect(await ls(dir)).toEqual(['alive']);
    expect(m.get('alive').status).toBe('running');
  });
});
