export * as filesystemv1 from './gen/filesystem/filesystem_pb.ts';
export * as processv1 from './gen/process/process_pb.ts';
export * as agentv1 from './gen/wrenn/agent/v1/agent_pb.ts';
