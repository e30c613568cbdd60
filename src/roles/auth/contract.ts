import type { AuthService } from "./service";

/**
 * The auth role's RPC surface: what gateways and other roles may call through
 * `p.clients.auth`. Over the bus nothing else is served (src/platform/rpc.ts).
 */
export const AUTH_RPC = [
  "signup", "login", "refresh", "logout", "me", "createApiKey", "listApiKeys", "updateApiKey", "deleteApiKey",
  "resolveApiKey", "apiKeySpendCap", "listMembers", "addMember",
] as const satisfies readonly (keyof AuthService)[];
export type AuthClient = Pick<AuthService, (typeof AUTH_RPC)[number]>;
