import { z } from 'zod/v4';
import type { RouteSpec } from './route.ts';
import { ErrorBody } from './schemas.ts';

/** Builds the OpenAPI 3.1 document from the registered routes' zod schemas. */
export function openApiDocument(specs: RouteSpec<any, any, any>[], version: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  const json = (s: z.ZodType, io: 'input' | 'output') => {
    const { $schema: _drop, ...rest } = z.toJSONSchema(s, {
      io,
      unrepresentable: 'any',
      target: 'draft-2020-12',
    }) as Record<string, unknown>;
    return rest;
  };
  const errorRef = {
    description: 'Error',
    content: { 'application/json': { schema: json(ErrorBody, 'output') } },
  };
  for (const spec of specs) {
    const path = spec.url.replace(/:([a-zA-Z]+)/g, '{$1}');
    const parameters: unknown[] = [];
    for (const [where, schema] of [
      ['path', spec.params],
      ['query', spec.query],
    ] as const) {
      if (!schema) continue;
      const js = json(schema, 'input') as {
        properties?: Record<string, unknown>;
        required?: string[];
      };
      for (const [name, s] of Object.entries(js.properties ?? {})) {
        parameters.push({
          name,
          in: where,
          required: where === 'path' || (js.required ?? []).includes(name),
          schema: s,
        });
      }
    }
    const op: Record<string, unknown> = {
      summary: spec.summary,
      tags: [spec.tag],
      operationId: `${spec.method.toLowerCase()}${path.replace(/[{}]/g, '').replace(/[/-](\w)/g, (_, c: string) => c.toUpperCase())}`,
      parameters,
      responses: {
        [spec.response.status]: {
          description: spec.response.description ?? 'Success',
          ...(spec.response.schema
            ? {
                content: {
                  [spec.response.contentType ?? 'application/json']: {
                    schema: json(spec.response.schema, 'output'),
                  },
                },
              }
            : spec.response.contentType
              ? {
                  content: {
                    [spec.response.contentType]: { schema: { type: 'string', format: 'binary' } },
                  },
                }
              : {}),
        },
        '400': errorRef,
        ...(spec.auth !== 'none' ? { '401': errorRef } : {}),
        '404': errorRef,
        ...(spec.auth === 'key' ? { '429': errorRef } : {}),
      },
    };
    if (spec.body)
      op.requestBody = {
        required: true,
        content: { 'application/json': { schema: json(spec.body, 'input') } },
      };
    if (spec.rawBody)
      op.requestBody = {
        required: true,
        content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
      };
    if (spec.auth === 'key') op.security = [{ apiKey: [] }, { bearer: [] }];
    if (spec.auth === 'host') op.security = [{ hostToken: [] }];
    paths[path] ??= {};
    paths[path]![spec.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Wrenn API',
      version,
      description: 'Native Wrenn API. Errors are always `{code, message}`.',
    },
    paths,
    components: {
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
        bearer: { type: 'http', scheme: 'bearer' },
        hostToken: { type: 'apiKey', in: 'header', name: 'X-Wrenn-Host-Token' },
      },
    },
  };
}
