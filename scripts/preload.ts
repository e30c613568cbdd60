// Loaded before `bun run` and `bun test` (bunfig.toml): code run from source gets the same
// postgres.js fix as the compiled binary (src/platform/db/postgres-patch.ts).
import { postgresPatchPlugin } from "../src/platform/db/postgres-patch";

Bun.plugin(postgresPatchPlugin);
