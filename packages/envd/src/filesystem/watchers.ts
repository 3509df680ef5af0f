import { type FSWatcher, watch } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { WrennError } from '@wrenn/common/errors.ts';
import { newId } from '@wrenn/common/ids.ts';
import { filesystemv1 } from '@wrenn/proto';

const { EventType } = filesystemv1;

export interface WatchEvent {
  /** Path relative to the watched directory. */
  name: string;
  type: filesystemv1.EventType;
  /** Absolute path, for callers that attach entry info. */
  path: string;
}

/** How long a vanished path waits for its inode to reappear elsewhere (then it's a rename). */
const RENAME_WINDOW_MS = 15;

interface Known {
  ino: number;
  mode: number;
}

/**
 * Watches a directory (optionally its whole tree) with one inotify watch per directory and
 * turns fs.watch's two kinds ('rename', 'change') into CREATE/WRITE/REMOVE/RENAME/CHMOD by
 * comparing against what it last saw: a path that vanished and whose inode reappears under
 * another name within RENAME_WINDOW_MS was renamed; otherwise it was removed.
 */
export class DirWatcher {
  private readonly watchers = new Map<string, FSWatcher>();
  private readonly known = new Map<string, Known>();
  private readonly vanished = new Map<number, { path: string; timer: NodeJS.Timeout }>();
  private closed = false;
  // fs.watch callbacks are handled one at a time, in order: a rename's "old name gone" must
  // be seen before its "new name appeared" for the inode pairing to work.
  private chain: Promise<void> = Promise.resolve();

  constructor(
    readonly root: string,
    private readonly recursive: boolean,
    private readonly onEvent: (ev: WatchEvent) => void,
  ) {}

  async start(): Promise<void> {
    await this.addDir(this.root, true);
  }

  private async addDir(dir: string, isRoot = false): Promise<void> {
    if (this.closed || this.watchers.has(dir)) return;
    const w = watch(dir, { persistent: false }, (kind, filename) => {
      if (filename === null) return;
      const path = join(dir, filename.toString());
      this.chain = this.chain.then(() => this.handle(kind, path)).catch(() => {});
    });
    w.on('error', () => this.removeDirWatch(dir));
    this.watchers.set(dir, w);
    let names: string[] = [];
    try {
      names = await readdir(dir);
    } catch (e) {
      if (isRoot) throw e;
    }
    for (const n of names) {
      const p = join(dir, n);
      const st = await lstat(p).catch(() => undefined);
      if (!st) continue;
      this.known.set(p, { ino: st.ino, mode: st.mode });
      if (this.recursive && st.isDirectory()) await this.addDir(p);
    }
  }

  private removeDirWatch(dir: string): void {
    for (const [d, w] of this.watchers) {
      if (d === dir || d.startsWith(`${dir}/`)) {
        w.close();
        this.watchers.delete(d);
      }
    }
  }

  private emit(type: filesystemv1.EventType, path: string): void {
    if (!this.closed) this.onEvent({ name: relative(this.root, path), type, path });
  }

  private async handle(kind: string, path: string): Promise<void> {
    const st = await lstat(path).catch(() => undefined);
    const before = this.known.get(path);
    if (kind === 'change') {
      if (!st) return;
      this.known.set(path, { ino: st.ino, mode: st.mode });
      this.emit(before && before.mode !== st.mode ? EventType.CHMOD : EventType.WRITE, path);
      return;
    }
    if (st) {
      if (before && before.ino === st.ino) return; // already reported
      const moved = this.vanished.get(st.ino);
      if (moved) {
        clearTimeout(moved.timer);
        this.vanished.delete(st.ino);
        this.emit(EventType.RENAME, moved.path);
      }
      this.known.set(path, { ino: st.ino, mode: st.mode });
      this.emit(EventType.CREATE, path);
      if (this.recursive && st.isDirectory()) await this.addDir(path);
      return;
    }
    if (!before) return;
    this.known.delete(path);
    this.removeDirWatch(path);
    const timer = setTimeout(() => {
      this.vanished.delete(before.ino);
      this.emit(EventType.REMOVE, path);
    }, RENAME_WINDOW_MS);
    this.vanished.set(before.ino, { path, timer });
  }

  close(): void {
    this.closed = true;
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
    for (const v of this.vanished.values()) clearTimeout(v.timer);
    this.vanished.clear();
  }
}

/** Events a polling watcher keeps between GetWatcherEvents calls (oldest dropped beyond). */
const MAX_PENDING_EVENTS = 10_000;

/** CreateWatcher / GetWatcherEvents / RemoveWatcher: watchers polled by id. */
export class WatcherTable {
  private readonly table = new Map<
    string,
    { watcher: DirWatcher; events: WatchEvent[]; includeEntry: boolean }
  >();

  async create(root: string, recursive: boolean, includeEntry: boolean): Promise<string> {
    const id = newId(16);
    const events: WatchEvent[] = [];
    const watcher = new DirWatcher(root, recursive, (ev) => {
      events.push(ev);
      if (events.length > MAX_PENDING_EVENTS) events.shift();
    });
    await watcher.start();
    this.table.set(id, { watcher, events, includeEntry });
    return id;
  }

  drain(id: string): { events: WatchEvent[]; includeEntry: boolean } {
    const w = this.table.get(id);
    if (!w) throw new WrennError('not_found', `watcher '${id}' not found`);
    return { events: w.events.splice(0), includeEntry: w.includeEntry };
  }

  remove(id: string): void {
    const w = this.table.get(id);
    if (!w) throw new WrennError('not_found', `watcher '${id}' not found`);
    w.watcher.close();
    this.table.delete(id);
  }

  closeAll(): void {
    for (const w of this.table.values()) w.watcher.close();
    this.table.clear();
  }
}
