/**
 * Who a request acts for, independent of how it arrived (HTTP, RPC, a run): the services take
 * it as an argument; only the gateway's auth guard and the auth role ever create one.
 */
export type MemberRole = "owner" | "member";

export interface Principal {
  userId: string;
  orgId: string;
  role: MemberRole;
  via: "jwt" | "api_key";
  keyId?: string;
  /** Unix seconds at which the credential stops being valid (JWT exp, API key expiry); absent = no expiry. */
  expiresAt?: number;
}

export const API_KEY_PREFIX = "aos_";
/** Bus subject (relative) announcing a deleted API key: every gateway drops its cached keys. */
export const API_KEYS_CHANGED = "cache.apikeys.changed";
/** The announcement's payload: which key went (gateways also close its WebSockets). */
export interface ApiKeysChanged {
  key_id?: string;
}
