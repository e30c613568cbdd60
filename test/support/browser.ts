/**
 * Debian's headless Chromium for the browser tests, driven by playwright-core (which never
 * downloads a browser here). Without /usr/bin/chromium a suite skips with a message, except
 * under CI=true where a missing browser fails (.ci/run installs the `chromium` package).
 */
import { existsSync } from "node:fs";

export const CHROMIUM = "/usr/bin/chromium";
/** Flags that keep Chromium from calling out on this closed network (see the machine's notes). */
export const CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"];
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);

/** Debian's Chromium under playwright-core, headless, with the flags above. */
export async function launchChromium() {
  const { chromium } = await import("playwright-core");
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/** True when the browser is there; CI without it is an error, elsewhere a warning. */
export function chromiumAvailable(suite: string): boolean {
  if (existsSync(CHROMIUM)) return true;
  const why = `${suite}: ${CHROMIUM} is missing (apt-get install -y chromium)`;
  if (process.env.CI === "true") throw new Error(`${why}; CI must install it`);
  console.warn(`${why}; skipping`);
  return false;
}

/** Only loopback (and the browser's own data:/blob:/about: URLs) may be requested. */
export function isLoopback(url: string): boolean {
  const u = new URL(url);
  if (u.protocol === "data:" || u.protocol === "blob:" || u.protocol === "about:") return true;
  return LOOPBACK_HOSTS.has(u.hostname);
}
