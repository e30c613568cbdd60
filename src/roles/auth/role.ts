import { API_KEYS_CHANGED, type ApiKeysChanged } from "../../platform/principal";
import { createJwt, loadJwtSecret } from "../../platform/jwt";
import type { AppPlatform } from "../clients";
import type { RoleInstance } from "../modules";
import { AuthService } from "./service";

/** The auth role's code; what it is (deps, uses, rpc) is its row in src/roles/modules.ts. */
export function init(p: AppPlatform): RoleInstance {
  const jwt = createJwt(loadJwtSecret(p.config, p.log), p.config.accessTokenTtlSeconds);
  const service = new AuthService(p.db, jwt, p.config.refreshTokenTtlSeconds, (keyId) => p.bus.publish(p.bus.subject(API_KEYS_CHANGED), { key_id: keyId } satisfies ApiKeysChanged), p.config.idempotencyStaleMs);
  return { service };
}
