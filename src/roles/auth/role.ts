import { AUTH_RPC } from "./contract";
import { API_KEYS_CHANGED, type ApiKeysChanged } from "../../platform/principal";
import { createJwt, loadJwtSecret } from "../../platform/jwt";
import type { RoleModule } from "../modules";
import { AuthService } from "./service";

export const authRole: RoleModule = {
  name: "auth",
  rpc: AUTH_RPC,
  deps: ["database", "cache", "bus"],
  uses: [],
  description: "accounts, sessions (JWT + rotating refresh tokens), API keys, organization members",
  init(p) {
    const jwt = createJwt(loadJwtSecret(p.config, p.log), p.config.accessTokenTtlSeconds);
    const service = new AuthService(p.db, jwt, p.config.refreshTokenTtlSeconds, (keyId) => p.bus.publish(p.bus.subject(API_KEYS_CHANGED), { key_id: keyId } satisfies ApiKeysChanged), p.config.idempotencyStaleMs);
    return { service };
  },
};
