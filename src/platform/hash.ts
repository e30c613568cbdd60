/** SHA-256 as hex: how tokens and API keys are stored and looked up (never in clear). */
export const sha256Hex = (value: string) => new Bun.CryptoHasher("sha256").update(value).digest("hex");

/** A random secret of `bytes` bytes (tokens, API keys, signing secrets), base64url unless asked for hex. */
export const randomSecret = (bytes = 32, encoding: "base64url" | "hex" = "base64url") => Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString(encoding);
