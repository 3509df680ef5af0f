export * as agentv1 from './gen/wrenn/agent/v1/agent_pb.ts';
