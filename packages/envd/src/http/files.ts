import { createReadStream, createWriteStream } from 'node:fs';
import { chown, lstat, rename, rm, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { WrennError } from '@wrenn/common/errors.ts';
import busboy from 'busboy';
import { checkAccessToken, resolveUser, verifyFileSignature } from '../auth.ts';
import { fromErrno } from '../errors.ts';
import type { MetadataStore } from '../filesystem/metadata.ts';
import { checkAccess, mkdirAs, resolvePath } from '../paths.ts';
import { ensureHome } from '../rpc-context.ts';
import type { EnvdState } from '../state.ts';
import type { User } from '../users.ts';
import { sendJson } from './respond.ts';

/**
 * Who may touch /files: the access token, or (instead of it) a URL signature for exactly this
 * path, operation and user, as the SDK's uploadUrl/downloadUrl make them.
 */
function authorize(
  state: EnvdState,
  req: IncomingMessage,
  q: URLSearchParams,
  operation: 'read' | 'write',
): User {
  const signature = q.get('signature');
  if (signature) {
    verifyFileSignature(state, {
      path: q.get('path') ?? '',
      operation,
      username: q.get('username') ?? '',
      signature,
      expiration: q.get('signature_expiration') ?? undefined,
    });
  } else {
    const token = req.headers['x-access-token'];
    checkAccessToken(state, Array.isArray(token) ? token[0] : token);
  }
  return resolveUser(state, q.get('username') ?? undefined);
}

async function authorizeWithHome(
  state: EnvdState,
  req: IncomingMessage,
  q: URLSearchParams,
  op: 'read' | 'write',
) {
  const user = authorize(state, req, q, op);
  await ensureHome(state, user);
  return user;
}

/** GET /files?path=&username= — the file's bytes, streamed (gzip if the client accepts it). */
export async function downloadFile(
  state: EnvdState,
  req: IncomingMessage,
  res: ServerResponse,
  q: URLSearchParams,
) {
  const user = await authorizeWithHome(state, req, q, 'read');
  const raw = q.get('path');
  if (!raw) throw new WrennError('invalid_argument', 'query parameter path is required');
  const path = resolvePath(user, raw);
  await checkAccess(user, path, ['r']);
  const st = await stat(path).catch((e) => {
    throw fromErrno(e, path);
  });
  if (st.isDirectory()) throw new WrennError('invalid_argument', `${path}: is a directory`);
  const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const headers: Record<string, string | number> = {
    'content-type': 'application/octet-stream',
    'content-disposition': `attachment; filename="${encodeURIComponent(basename(path))}"`,
  };
  if (gzip) headers['content-encoding'] = 'gzip';
  else headers['content-length'] = st.size;
  const src = createReadStream(path, { highWaterMark: 1 << 20 });
  await new Promise<void>((resolve, reject) => {
    src.once('open', () => resolve());
    src.once('error', (e) => reject(fromErrno(e, path)));
  });
  res.writeHead(200, headers);
  await (gzip ? pipeline(src, createGzip({ level: 1 }), res) : pipeline(src, res));
}

interface Written {
  name: string;
  type: 'file';
  path: string;
  metadata?: Record<string, string>;
}

/**
 * POST /files — one file as an octet-stream body (`?path=`), or any number as multipart parts
 * (each part's filename is its path unless `?path=` names it). A gzip Content-Encoding is
 * undone on the fly. Bodies stream to disk; nothing is held in memory.
 */
export async function uploadFiles(
  state: EnvdState,
  metadata: MetadataStore,
  req: IncomingMessage,
  res: ServerResponse,
  q: URLSearchParams,
) {
  const user = await authorizeWithHome(state, req, q, 'write');
  const md = metadataFrom(req);
  const encoding = String(req.headers['content-encoding'] ?? '').toLowerCase();
  if (encoding && encoding !== 'gzip' && encoding !== 'identity') {
    throw new WrennError('invalid_argument', `unsupported Content-Encoding '${encoding}'`);
  }
  const body: Readable = encoding === 'gzip' ? req.pipe(createGunzip()) : req;
  if (encoding === 'gzip') req.once('error', (e) => body.destroy(e));
  const contentType = String(req.headers['content-type'] ?? '');
  const written: Written[] = [];

  if (contentType.startsWith('multipart/form-data')) {
    const queryPath = q.get('path');
    await new Promise<void>((resolve, reject) => {
      let bb: busboy.Busboy;
      try {
        bb = busboy({
          headers: { ...req.headers, 'content-type': contentType },
          preservePath: true,
        });
      } catch (e) {
        reject(new WrennError('invalid_argument', `bad multipart body: ${(e as Error).message}`));
        return;
      }
      // Parts are written one after another (busboy waits while a part's stream is unread).
      let chain: Promise<void> = Promise.resolve();
      let failed = false;
      bb.on('file', (_field, stream, info) => {
        chain = chain.then(async () => {
          if (failed) {
            stream.resume();
            return;
          }
          const target = queryPath || info.filename;
          if (!target)
            throw new WrennError(
              'invalid_argument',
              'multipart part has no filename and no ?path= was given',
            );
          written.push(await writeOne(user, resolvePath(user, target), stream, metadata, md));
        });
        chain.catch((e) => {
          failed = true;
          stream.resume();
          reject(e);
        });
      });
      bb.on('error', (e) =>
        reject(new WrennError('invalid_argument', `bad multipart body: ${(e as Error).message}`)),
      );
      bb.on('close', () => chain.then(() => resolve(), reject));
      body.on('error', (e) =>
        reject(new WrennError('invalid_argument', `upload body: ${(e as Error).message}`)),
      );
      body.pipe(bb);
    });
  } else {
    const raw = q.get('path');
    if (!raw)
      throw new WrennError(
        'invalid_argument',
        'query parameter path is required for an octet-stream upload',
      );
    written.push(await writeOne(user, resolvePath(user, raw), body, metadata, md));
  }
  if (written.length === 0) throw new WrennError('invalid_argument', 'upload contained no files');
  sendJson(res, 200, written);
}

/**
 * Stream one file to a temporary sibling, then rename it over the target: a failed or
 * aborted upload leaves the old file untouched. The file belongs to the user.
 */
async function writeOne(
  user: User,
  path: string,
  src: Readable,
  metadata: MetadataStore,
  md: Record<string, string>,
): Promise<Written> {
  await mkdirAs(user, dirname(path));
  await checkAccess(user, path, ['w'], ['w', 'x']);
  const existing = await lstat(path).catch(() => undefined);
  if (existing?.isDirectory()) throw new WrennError('invalid_argument', `${path}: is a directory`);
  const tmp = join(dirname(path), `.${basename(path)}.wrenn-upload-${process.pid}-${Date.now()}`);
  try {
    const mode = existing ? existing.mode & 0o7777 : 0o644;
    await pipeline(src, createWriteStream(tmp, { mode, highWaterMark: 1 << 20 }));
    await chown(tmp, existing?.uid ?? user.uid, existing?.gid ?? user.gid);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e instanceof WrennError ? e : fromErrno(e, path);
  }
  const st = await stat(path);
  metadata.set(st, md);
  const out: Written = { name: basename(path), type: 'file', path };
  if (Object.keys(md).length > 0) out.metadata = md;
  return out;
}

/** `X-Metadata-<key>: <value>` headers, as the SDK sends file metadata. */
function metadataFrom(req: IncomingMessage): Record<string, string> {
  const md: Record<string, string> = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    if (name.toLowerCase().startsWith('x-metadata-'))
      md[name.slice('x-metadata-'.length)] = req.rawHeaders[i + 1]!;
  }
  return md;
}
