/**
 * Access tokens: HS256 JWTs with `sub`, `org`, `role`, `iat`, `exp`. Verification pins the
 * algorithm and requires `exp`, so an unsigned, `alg: none` or never-expiring token fails.
 */
import { SignJWT, jwtVerify } from "jose";
import type { Config } from "./config";
import { FatalError } from "./errors";
import { generatedSecret } from "./generated-secret";
import type { Logger } from "./logging";

export interface AccessClaims {
  sub: string;
  org: string;
  role: string;
}

export interface Jwt {
  sign(claims: AccessClaims): Promise<{ token: string; expiresIn: number }>;
  /**
   * The claims of a valid token; "expired" for a genuine token past its `exp` (so clients can
   * refresh on `token_expired` every time, not only the first); null otherwise. Never throws.
   */
  verify(token: string): Promise<(AccessClaims & { exp: number }) | "expired" | null>;
}

export function createJwt(secret: string, ttlSeconds: number): Jwt {
  const key = new TextEncoder().encode(secret);
  return {
    async sign(claims) {
      const token = await new SignJWT({ org: claims.org, role: claims.role })
        .setProtectedHeader({ alg: "HS256", typ: "JWT" })
        .setSubject(claims.sub)
        .setIssuedAt()
        .setExpirationTime(`${ttlSeconds}s`)
        .setJti(crypto.randomUUID())
        .sign(key);
      return { token, expiresIn: ttlSeconds };
    },
    async verify(token) {
      try {
        const { payload } = await jwtVerify(token, key, { algorithms: ["HS256"], requiredClaims: ["exp", "iat", "sub"] });
        if (typeof payload.org !== "string" || typeof payload.role !== "string" || typeof payload.exp !== "number") return null;
        return { sub: payload.sub!, org: payload.org, role: payload.role, exp: payload.exp };
      } catch (err) {
        // jose checks the signature before the claims: an expired error means the token was ours.
        return (err as { code?: string }).code === "ERR_JWT_EXPIRED" ? "expired" : null;
      }
    },
  };
}

/**
 * JWT_SECRET is required with a real database (every replica must share it). On the embedded
 * default a secret is generated once and kept in the data dir, so tokens survive restarts.
 */
export function loadJwtSecret(config: Config, log: Logger): string {
  if (config.jwtSecret) {
    if (config.jwtSecret.length < 32) throw new FatalError("JWT_SECRET must be at least 32 characters");
    return config.jwtSecret;
  }
  if (config.databaseUrl) throw new FatalError("JWT_SECRET is required when DATABASE_URL is set (every process must share it)");
  return generatedSecret(config.dataDir, "jwt-secret", log, "JWT_SECRET not set: generated one and stored it in the data dir; set JWT_SECRET in production");
}
