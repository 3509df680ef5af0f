import { lstat, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ServiceImpl } from '@connectrpc/connect';
import { WrennError } from '@wrenn/common/errors.ts';
import { filesystemv1 } from '@wrenn/proto';
import { fromErrno } from '../errors.ts';
import { checkAccess, mkdirAs, resolvePath } from '../paths.ts';
import { keepaliveMs, rpcUser, streaming, unary } from '../rpc-context.ts';
import type { EnvdState } from '../state.ts';
import { idNames, type User } from '../users.ts';
import { entryInfo } from './entry.ts';
import type { MetadataStore } from './metadata.ts';
import { DirWatcher, type WatchEvent, type WatcherTable } from './watchers.ts';

const { Filesystem } = filesystemv1;

/** filesystem.Filesystem: stat, list, create, move, remove and watch, as the request's user. */
export function filesystemService(
  state: EnvdState,
  watchers: WatcherTable,
  metadata: MetadataStore,
): ServiceImpl<typeof Filesystem> {
  const info = (path: string) => entryInfo(path, idNames(), metadata);

  return {
    stat: (req, ctx) =>
      unary(async () => {
        const user = await rpcUser(state, ctx);
        const path = resolvePath(user, req.path);
        await checkAccess(user, path, []);
        return { entry: await info(path) };
      }),

    makeDir: (req, ctx) =>
      unary(async () => {
        const user = await rpcUser(state, ctx);
        const path = resolvePath(user, req.path);
        const exists = await lstat(path).catch(() => undefined);
        if (exists) throw new WrennError('conflict', `${path}: already exists`);
        await mkdirAs(user, path);
        return { entry: await info(path) };
      }),

    move: (req, ctx) =>
      unary(async () => {
        const user = await rpcUser(state, ctx);
        const from = resolvePath(user, req.source);
        const to = resolvePath(user, req.destination);
        await checkAccess(user, from, [], ['w', 'x']);
        await lstat(from).catch((e) => {
          throw fromErrno(e, from);
        });
        await mkdirAs(user, dirname(to));
        await checkAccess(user, to, [], ['w', 'x']);
        await rename(from, to).catch((e) => {
          throw fromErrno(e, `move ${from} to ${to}`);
        });
        return { entry: await info(to) };
      }),

    listDir: (req, ctx) =>
      unary(async () => {
        const user = await rpcUser(state, ctx);
        const root = resolvePath(user, req.path);
        const depth = req.depth || 1;
        await checkAccess(user, root, ['r', 'x']);
        const st = await stat(root).catch((e) => {
          throw fromErrno(e, root);
        });
        if (!st.isDirectory()) throw new WrennError('invalid_argument', `${root}: not a directory`);
        const names = idNames();
        const entries: filesystemv1.EntryInfo[] = [];
        const walk = async (dir: string, level: number): Promise<void> => {
          const children = await readdir(dir).catch((e) => {
            if (dir === root) throw fromErrno(e, dir);
            return [] as string[];
          });
          for (const n of children.sort()) {
            const p = join(dir, n);
            const cst = await lstat(p).catch(() => undefined);
            if (!cst) continue; // deleted while listing
            entries.push(await entryInfo(p, names, metadata, cst));
            if (cst.isDirectory() && level < depth) await walk(p, level + 1);
          }
        };
        await walk(root, 1);
        return { entries };
      }),

    remove: (req, ctx) =>
      unary(async () => {
        const user = await rpcUser(state, ctx);
        const path = resolvePath(user, req.path);
        await checkAccess(user, path, [], ['w', 'x']);
        const st = await lstat(path).catch((e) => {
          throw fromErrno(e, path);
        });
        metadata.forget(st);
        await rm(path, { recursive: true, force: false }).catch((e) => {
          throw fromErrno(e, path);
        });
        return {};
      }),

    watchDir: (req, ctx) =>
      streaming(async function* () {
        const user = await rpcUser(state, ctx);
        const root = await watchableDir(user, resolvePath(user, req.path));
        const queue: filesystemv1.FilesystemEvent[] = [];
        let wake: (() => void) | undefined;
        // Entry lookups are async; chain them so events keep the order they happened in.
        let ordered: Promise<void> = Promise.resolve();
        const watcher = new DirWatcher(root, req.recursive, (ev) => {
          ordered = ordered.then(async () => {
            queue.push(await toProto(ev, req.includeEntry, info));
            wake?.();
          });
        });
        await watcher.start();
        let keepalive = false;
        const timer = setInterval(() => {
          keepalive = true;
          wake?.();
        }, keepaliveMs(ctx));
        const onAbort = () => wake?.();
        ctx.signal.addEventListener('abort', onAbort);
        try {
          yield { event: { case: 'start', value: {} } };
          while (!ctx.signal.aborted) {
            if (queue.length === 0 && !keepalive) {
              await new Promise<void>((r) => {
                wake = r;
              });
              wake = undefined;
            }
            if (keepalive && queue.length === 0) yield { event: { case: 'keepalive', value: {} } };
            keepalive = false;
            while (queue.length > 0) yield { event: { case: 'filesystem', value: queue.shift()! } };
          }
        } finally {
          clearInterval(timer);
          ctx.signal.removeEventListener('abort', onAbort);
          watcher.close();
        }
      }),

    createWatcher: (req, ctx) =>
      unary(async () => {
        const user = await rpcUser(state, ctx);
        const root = await watchableDir(user, resolvePath(user, req.path));
        return { watcherId: await watchers.create(root, req.recursive, req.includeEntry) };
      }),

    getWatcherEvents: (req) =>
      unary(async () => {
        const { events, includeEntry } = watchers.drain(req.watcherId);
        return { events: await Promise.all(events.map((ev) => toProto(ev, includeEntry, info))) };
      }),

    removeWatcher: (req) =>
      unary(async () => {
        watchers.remove(req.watcherId);
        return {};
      }),
  };
}

async function watchableDir(user: User, path: string): Promise<string> {
  await checkAccess(user, path, ['r', 'x']);
  const st = await stat(path).catch((e) => {
    throw fromErrno(e, path);
  });
  if (!st.isDirectory()) throw new WrennError('invalid_argument', `${path}: not a directory`);
  return path;
}

async function toProto(
  ev: WatchEvent,
  includeEntry: boolean,
  info: (p: string) => Promise<filesystemv1.EntryInfo>,
): Promise<filesystemv1.FilesystemEvent> {
  // The entry is only knowable while the path exists (not after remove/rename-away).
  const entry = includeEntry ? await info(ev.path).catch(() => undefined) : undefined;
  return { $typeName: 'filesystem.FilesystemEvent', name: ev.name, type: ev.type, entry };
}
