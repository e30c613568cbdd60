/**
 * Outbound HTTP that a tenant controls (http tools, webhooks; later MCP servers), guarded
 * against SSRF. The host is resolved ONCE, every address it resolves to is checked, and the
 * request connects to a checked address (the URL's host goes in the Host header and the TLS
 * server name, so virtual hosts and certificates work as before): a DNS answer that changes
 * between check and connect (rebinding) cannot reach an internal address. Redirects are
 * followed by hand, each hop resolved and checked again.
 *
 * Errors never tell a closed port from an open one or echo what an internal service said:
 * a refused address is `target_refused`; any failure to connect, resolve or read is
 * `target_unreachable` with one generic message (the cause is kept for the server's log).
 */
import { lookup } from "node:dns/promises";
import { blockedRange, isIpLiteral, type BlockedRange } from "./address";

export interface OutboundPolicy {
  /** `AGENTOS_ALLOW_PRIVATE_TARGETS`: connect to internal addresses too (development, tests). */
  allowPrivate: boolean;
  /** Name → addresses; the system resolver by default (tests inject a fake). */
  resolve?: (hostname: string) => Promise<string[]>;
  /** Address → blocked range or null; `blockedRange` by default (tests inject a stricter one). */
  classify?: (address: string) => BlockedRange | null;
}

export type OutboundErrorCode = "target_refused" | "target_unreachable";

export class OutboundError extends Error {
  constructor(
    readonly code: OutboundErrorCode,
    message: string,
    /** The underlying failure, for the server's log only: never shown to the tenant. */
    readonly detail?: unknown,
  ) {
    super(message);
  }
}

export interface OutboundRequest {
  method: string;
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
}

/** Which redirects to follow: at most `max` hops, each allowed by `allow` (a refused one is returned as the 3xx). */
export interface RedirectRule {
  max: number;
  allow(status: number, from: URL, to: URL): boolean;
}

export const NO_REDIRECTS: RedirectRule = { max: 0, allow: () => false };

const PRIVATE_HINT = "AgentOS calls only public internet addresses.";

/**
 * For registration: why `url` may not be used as a target, or null. Only IP literals are
 * judged here (a name's addresses may change; they are checked at every call).
 */
export function literalTargetProblem(url: URL, policy: OutboundPolicy): string | null {
  if (policy.allowPrivate || !isIpLiteral(url.hostname)) return null;
  const range = (policy.classify ?? blockedRange)(url.hostname);
  return range ? `${url.hostname} is a ${range} address; ${PRIVATE_HINT}` : null;
}

async function systemResolve(hostname: string): Promise<string[]> {
  return (await lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);
}

const unreachable = (url: URL, detail?: unknown) =>
  new OutboundError("target_unreachable", `Could not reach ${url.host}: the name did not resolve, or the connection failed or closed before a reply.`, detail);

function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** The addresses to try for `url`, every one of them checked. */
async function checkedAddresses(url: URL, policy: OutboundPolicy, signal: AbortSignal): Promise<string[]> {
  const host = url.hostname;
  let addresses: string[];
  if (isIpLiteral(host)) addresses = [host.replace(/^\[|\]$/g, "")];
  else {
    try {
      addresses = await abortable((policy.resolve ?? systemResolve)(host), signal);
    } catch (err) {
      if (signal.aborted) throw err;
      throw unreachable(url, err);
    }
    if (addresses.length === 0) throw unreachable(url, new Error(`${host} resolved to no address`));
  }
  if (!policy.allowPrivate) {
    const classify = policy.classify ?? blockedRange;
    // One bad address refuses the name: otherwise a mixed answer would be a coin toss.
    for (const address of addresses) {
      const range = classify(address);
      if (range) {
        const what = isIpLiteral(host) ? `${host} is a ${range} address` : `${host} resolves to a non-public address`;
        throw new OutboundError("target_refused", `The target ${url.host} is refused: ${what}. ${PRIVATE_HINT}`, { address, range });
      }
    }
  }
  return addresses;
}

/** Failures before anything was sent: the next address of the name may work. */
function failedToConnect(err: unknown): boolean {
  const code = (err as { code?: string })?.code ?? "";
  return ["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "ConnectionRefused", "FailedToOpenSocket"].includes(code);
}

/** One hop: resolve, check, connect to a checked address (the next one if connecting fails). */
async function requestOnce(url: URL, req: OutboundRequest, policy: OutboundPolicy): Promise<Response> {
  const addresses = await checkedAddresses(url, policy, req.signal);
  const byName = !isIpLiteral(url.hostname);
  let lastError: unknown;
  for (const address of addresses) {
    const pinned = new URL(url);
    pinned.hostname = address.includes(":") ? `[${address}]` : address;
    try {
      return await fetch(pinned, {
        method: req.method,
        body: req.body,
        signal: req.signal,
        redirect: "manual",
        headers: { ...req.headers, host: url.host },
        // The certificate is checked against the name the tenant gave, not the address.
        ...(byName && url.protocol === "https:" ? { tls: { serverName: url.hostname } } : {}),
      });
    } catch (err) {
      if (req.signal.aborted) throw err;
      lastError = err;
      if (!failedToConnect(err)) break;
    }
  }
  throw unreachable(url, lastError);
}

/**
 * Sends `req` to `target` under `policy`, following redirects that `redirects` allows (each
 * hop checked again). Returns the final response and its URL; a redirect that is not
 * followed comes back as the 3xx response (body cancelled) for the caller to report.
 * Throws OutboundError, or the signal's reason when aborted.
 */
export async function outboundFetch(target: string | URL, req: OutboundRequest, policy: OutboundPolicy, redirects: RedirectRule = NO_REDIRECTS): Promise<{ response: Response; url: URL }> {
  let url = new URL(target);
  for (let hop = 0; ; hop++) {
    const response = await requestOnce(url, req, policy);
    if (response.status < 300 || response.status >= 400) return { response, url };
    await response.body?.cancel().catch(() => {});
    const location = response.headers.get("location");
    let next: URL | null = null;
    try {
      next = location ? new URL(location, url) : null;
    } catch {
      next = null;
    }
    if (!next || hop >= redirects.max || (next.protocol !== "http:" && next.protocol !== "https:") || !redirects.allow(response.status, url, next)) {
      return { response, url };
    }
    url = next;
  }
}
