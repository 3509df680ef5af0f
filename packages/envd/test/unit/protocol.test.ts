import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { type FileDescriptorProto, FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { filesystemv1, processv1 } from '@wrenn/proto';
import { describe, expect, it } from 'vitest';

// The wire contract is whatever the official SDK ships: its generated descriptors are the
// reference. Our .proto files must describe the same packages, services, methods (with
// streaming kinds), messages, fields (names, numbers, types, labels) and enums.
const require = createRequire(import.meta.url);
const sdkSource = readFileSync(require.resolve('e2b').replace(/index\.js$/, 'index.mjs'), 'utf8');

function sdkDescriptor(name: string): FileDescriptorProto {
  for (const m of sdkSource.matchAll(/fileDesc\("([A-Za-z0-9+/=]+)"/g)) {
    const fd = fromBinary(FileDescriptorProtoSchema, Buffer.from(m[1]!, 'base64'));
    if (fd.name === name) return fd;
  }
  throw new Error(`the e2b SDK no longer ships ${name}`);
}

/**
 * The wire-relevant shape of a file. Options (java_package, ...) never reach the wire, and the
 * SDK's embedded copy omits imports (field type names still name google.protobuf.Timestamp).
 */
function shape(fd: FileDescriptorProto) {
  const msg = (m: FileDescriptorProto['messageType'][number]): unknown => ({
    name: m.name,
    fields: m.field.map((f) => [
      f.name,
      f.number,
      f.type,
      f.label,
      f.typeName,
      f.proto3Optional,
      f.oneofIndex,
    ]),
    oneofs: m.oneofDecl.map((o) => o.name),
    nested: m.nestedType.map(msg),
    enums: m.enumType.map((e) => [e.name, e.value.map((v) => [v.name, v.number])]),
  });
  return {
    package: fd.package,
    messages: fd.messageType.map(msg),
    enums: fd.enumType.map((e) => [e.name, e.value.map((v) => [v.name, v.number])]),
    services: fd.service.map((s) => [
      s.name,
      s.method.map((m) => [
        m.name,
        m.inputType,
        m.outputType,
        !!m.clientStreaming,
        !!m.serverStreaming,
      ]),
    ]),
  };
}

function ours(file: { proto: FileDescriptorProto }): FileDescriptorProto {
  // Round-trip through binary to get a plain descriptor comparable to the SDK's.
  return fromBinary(FileDescriptorProtoSchema, toBinary(FileDescriptorProtoSchema, file.proto));
}

describe('protocol surface matches the e2b SDK', () => {
  it('process/process.proto', () => {
    expect(shape(ours(processv1.file_process_process))).toEqual(
      shape(sdkDescriptor('process/process.proto')),
    );
  });

  it('filesystem/filesystem.proto', () => {
    expect(shape(ours(filesystemv1.file_filesystem_filesystem))).toEqual(
      shape(sdkDescriptor('filesystem/filesystem.proto')),
    );
  });
});
