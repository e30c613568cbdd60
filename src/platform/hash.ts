/** SHA-256 as hex: how tokens and API keys are stored and looked up (never in clear). */
export const sha256Hex = (value: string) => new Bun.CryptoHasher("sha256").update(value).digest("hex");
