import { type Client, Code, ConnectError, createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';
import { WrennError } from '@wrenn/common';
import { agentv1 } from '@wrenn/proto';

export type AgentClient = Client<typeof agentv1.AgentService>;

/** Header every request to an agent carries (RPC and proxy); see the agent contract. */
export const HOST_TOKEN_HEADER = 'x-wrenn-host-token';

export interface AgentEndpoint {
  id: string;
  agent_url: string;
  host_token: string;
}

/**
 * One Connect client per host, reused across requests (keep-alive connections).
 * A host that re-registers at a new URL or token gets a new client.
 */
export class AgentPool {
  private readonly clients = new Map<string, { key: string; client: AgentClient }>();

  constructor(private readonly timeoutMs = 120_000) {}

  for(host: AgentEndpoint): AgentClient {
    const key = `${host.agent_url}\n${host.host_token}`;
    const cached = this.clients.get(host.id);
    if (cached?.key === key) return cached.client;
    const transport = createConnectTransport({
      baseUrl: host.agent_url,
      httpVersion: '1.1',
      defaultTimeoutMs: this.timeoutMs,
      interceptors: [
        (next) => async (req) => {
          req.header.set(HOST_TOKEN_HEADER, host.host_token);
          return next(req);
        },
      ],
    });
    const client = createClient(agentv1.AgentService, transport);
    this.clients.set(host.id, { key, client });
    return client;
  }

  forget(hostId: string): void {
    this.clients.delete(hostId);
  }
}

/** Agent failures become domain errors at this one place (the agent is an edge too). */
export function fromAgentError(e: unknown, what: string): WrennError {
  if (e instanceof WrennError) return e;
  const ce = ConnectError.from(e);
  const msg = `${what}: ${ce.rawMessage}`;
  switch (ce.code) {
    case Code.NotFound:
      return new WrennError('not_found', msg, { cause: e });
    case Code.InvalidArgument:
      return new WrennError('invalid_argument', msg, { cause: e });
    case Code.AlreadyExists:
    case Code.FailedPrecondition:
    case Code.Aborted:
      return new WrennError('conflict', msg, { cause: e });
    case Code.ResourceExhausted:
    case Code.Unavailable:
      return new WrennError('unavailable', msg, { cause: e });
    case Code.DeadlineExceeded:
      return new WrennError('deadline_exceeded', msg, { cause: e });
    case Code.Unauthenticated:
    case Code.PermissionDenied:
      return new WrennError(
        'bad_gateway',
        `${what}: the agent rejected this control plane's host token`,
        { cause: e },
      );
    default:
      return new WrennError('internal', msg, { cause: e });
  }
}

export function isAgentNotFound(e: unknown): boolean {
  return e instanceof ConnectError
    ? e.code === Code.NotFound
    : ConnectError.from(e).code === Code.NotFound;
}
