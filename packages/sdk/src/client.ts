import { ERROR_CODES, type ErrorCode, WrennError } from '@wrenn/common';
import type {
  ApiKey,
  AuditEntry,
  CreateSandbox,
  Exec,
  ExecResult,
  Host,
  ListSandboxes,
  MetricPoint,
  Sandbox,
  Template,
} from './types.ts';

export interface WrennClientOptions {
  /** Control plane URL, e.g. `http://127.0.0.1:3000` (WRENN_API_URL). */
  apiUrl: string;
  /** Team API key (WRENN_API_KEY). */
  apiKey: string;
  /** Where sandbox traffic goes (E2B_SANDBOX_URL); default: the API URL (built-in gateway). */
  sandboxUrl?: string;
}

/**
 * Typed client for Wrenn's native `/v1` API. Errors from the server are rethrown as
 * `WrennError` with the server's `{code, message}`.
 *
 * @example
 * const wrenn = new WrennClient({ apiUrl: process.env.WRENN_API_URL!, apiKey: process.env.WRENN_API_KEY! });
 * const sbx = await wrenn.sandboxes.create({ templateId: 'base' });
 * const { stdout } = await wrenn.sandboxes.exec(sbx.sandboxId, { cmd: 'uname -a' });
 */
export class WrennClient {
  readonly apiUrl: string;
  readonly sandboxUrl: string;
  readonly apiKey: string;

  constructor(opts: WrennClientOptions) {
    this.apiUrl = opts.apiUrl.replace(/\/+$/, '');
    this.sandboxUrl = (opts.sandboxUrl ?? opts.apiUrl).replace(/\/+$/, '');
    this.apiKey = opts.apiKey;
  }

  /** One request; JSON in and out unless `raw`. */
  async request<T>(
    method: string,
    path: string,
    opts: { body?: unknown; raw?: Uint8Array; query?: Record<string, string | undefined> } = {},
  ): Promise<T> {
    const q = Object.entries(opts.query ?? {}).filter(([, v]) => v !== undefined) as [
      string,
      string,
    ][];
    const url = `${this.apiUrl}${path}${q.length ? `?${new URLSearchParams(q)}` : ''}`;
    const headers: Record<string, string> = { 'x-api-key': this.apiKey };
    let body: string | Uint8Array | undefined;
    if (opts.raw) {
      headers['content-type'] = 'application/octet-stream';
      body = opts.raw;
    } else if (opts.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    let res: Response;
    try {
      res = await fetch(url, { method, headers, body });
    } catch (e) {
      throw new WrennError(
        'unavailable',
        `cannot reach the Wrenn API at ${this.apiUrl}: ${(e as Error).cause ?? (e as Error).message}`,
      );
    }
    if (!res.ok) throw await toError(res);
    if (res.status === 204) return undefined as T;
    if ((res.headers.get('content-type') ?? '').includes('application/json'))
      return (await res.json()) as T;
    return new Uint8Array(await res.arrayBuffer()) as T;
  }

  readonly sandboxes = {
    create: (input: CreateSandbox = {}) =>
      this.request<Sandbox>('POST', '/v1/sandboxes', { body: input }),
    list: (input: ListSandboxes = {}) =>
      this.request<{ sandboxes: Sandbox[]; nextToken: string | null }>('GET', '/v1/sandboxes', {
        query: {
          metadata: input.metadata ? new URLSearchParams(input.metadata).toString() : undefined,
          status: input.status?.join(','),
          limit: input.limit?.toString(),
          nextToken: input.nextToken,
        },
      }),
    get: (id: string) => this.request<Sandbox>('GET', `/v1/sandboxes/${enc(id)}`),
    kill: (id: string) => this.request<void>('DELETE', `/v1/sandboxes/${enc(id)}`),
    pause: (id: string) => this.request<Sandbox>('POST', `/v1/sandboxes/${enc(id)}/pause`),
    resume: (id: string, opts: { timeoutSeconds?: number } = {}) =>
      this.request<Sandbox>('POST', `/v1/sandboxes/${enc(id)}/resume`, { body: opts }),
    setTimeout: (id: string, timeoutSeconds: number) =>
      this.request<Sandbox>('POST', `/v1/sandboxes/${enc(id)}/timeout`, {
        body: { timeoutSeconds },
      }),
    exec: (id: string, input: Exec) =>
      this.request<ExecResult>('POST', `/v1/sandboxes/${enc(id)}/exec`, { body: input }),
    readFile: (id: string, path: string, opts: { user?: string } = {}) =>
      this.request<Uint8Array>('GET', `/v1/sandboxes/${enc(id)}/files`, {
        query: { path, user: opts.user },
      }),
    writeFile: (
      id: string,
      path: string,
      data: Uint8Array | string,
      opts: { user?: string } = {},
    ) =>
      this.request<void>('PUT', `/v1/sandboxes/${enc(id)}/files`, {
        query: { path, user: opts.user },
        raw: typeof data === 'string' ? new TextEncoder().encode(data) : data,
      }),
    metrics: async (id: string, opts: { since?: number } = {}) =>
      (
        await this.request<{ points: MetricPoint[] }>('GET', `/v1/sandboxes/${enc(id)}/metrics`, {
          query: { since: opts.since?.toString() },
        })
      ).points,
  };

  readonly templates = {
    list: async () =>
      (await this.request<{ templates: Template[] }>('GET', '/v1/templates')).templates,
    get: (id: string) => this.request<Template>('GET', `/v1/templates/${enc(id)}`),
    delete: (id: string) => this.request<void>('DELETE', `/v1/templates/${enc(id)}`),
    snapshot: (sandboxId: string, templateId: string) =>
      this.request<Template>('POST', '/v1/templates', { body: { sandboxId, templateId } }),
  };

  readonly hosts = {
    list: async () => (await this.request<{ hosts: Host[] }>('GET', '/v1/hosts')).hosts,
    get: (id: string) => this.request<Host>('GET', `/v1/hosts/${enc(id)}`),
    delete: (id: string) => this.request<void>('DELETE', `/v1/hosts/${enc(id)}`),
    createToken: () =>
      this.request<{ token: string; expiresAt: string }>('POST', '/v1/hosts/tokens'),
  };

  readonly keys = {
    create: (input: { name: string; teamId?: string }) =>
      this.request<{ key: string; info: ApiKey }>('POST', '/v1/keys', { body: input }),
    list: async () => (await this.request<{ keys: ApiKey[] }>('GET', '/v1/keys')).keys,
    revoke: (id: string) => this.request<ApiKey>('DELETE', `/v1/keys/${enc(id)}`),
  };

  audit(opts: { limit?: number; nextToken?: string; action?: string } = {}) {
    return this.request<{ entries: AuditEntry[]; nextToken: string | null }>('GET', '/v1/audit', {
      query: { limit: opts.limit?.toString(), nextToken: opts.nextToken, action: opts.action },
    });
  }
}

const enc = encodeURIComponent;

async function toError(res: Response): Promise<WrennError> {
  const text = await res.text();
  try {
    const j = JSON.parse(text) as { code?: string; message?: string };
    if (j.code && j.message) {
      const code = (j.code in ERROR_CODES ? j.code : 'internal') as ErrorCode;
      return new WrennError(code, j.message);
    }
  } catch {
    // not JSON: fall through
  }
  return new WrennError(
    res.status === 401 ? 'unauthenticated' : 'internal',
    `HTTP ${res.status}: ${text.slice(0, 200)}`,
  );
}

/** Decodes an exec stream field (`utf8` or `base64`) to bytes. */
export function execBytes(text: string, encoding: 'utf8' | 'base64'): Uint8Array {
  return encoding === 'base64' ? Buffer.from(text, 'base64') : Buffer.from(text, 'utf8');
}
