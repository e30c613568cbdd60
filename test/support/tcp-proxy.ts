/**
 * A TCP proxy on a free loopback port in front of a real server, for outage tests: `cut()`
 * closes every proxied connection and refuses new ones (what clients see when the server
 * dies), `restore()` listens again on the same port. Never touches the server behind it.
 * `replyDelayMs` holds every reply chunk back that long, and `clientBursts()` counts the
 * client's writes that a reply separates: the round trips a client protocol makes.
 */
import type { Socket, TCPSocketListener } from "bun";
import { freePort } from "./binary";

export interface TcpProxy {
  port: number;
  url(base: string): string;
  cut(): void;
  restore(): void;
  stop(): void;
  /** Bursts of client bytes since the last reset, each ended by a reply: the client's round trips. */
  clientBursts(): number;
  resetBursts(): void;
}

interface Pair {
  client: Socket<Pair>;
  upstream?: Socket<{ pair: Pair }>;
  /** Client bytes received before the upstream connection opened. */
  early: Uint8Array[];
}

export async function startTcpProxy(target: { host: string; port: number }, opts: { replyDelayMs?: number } = {}): Promise<TcpProxy> {
  const port = await freePort();
  let bursts = 0;
  let lastFromClient = false;
  const fromClient = () => {
    if (!lastFromClient) bursts++;
    lastFromClient = true;
  };
  const toClient = (pair: Pair, chunk: Uint8Array) => {
    lastFromClient = false;
    pair.client.write(chunk);
  };
  const pairs = new Set<Pair>();
  let listener: TCPSocketListener<Pair> | null = null;

  const listen = () => {
    listener = Bun.listen<Pair>({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(client) {
          const pair: Pair = { client, early: [] };
          client.data = pair;
          pairs.add(pair);
          Bun.connect<{ pair: Pair }>({
            hostname: target.host,
            port: target.port,
            data: { pair },
            socket: {
              open(upstream) {
                pair.upstream = upstream;
                for (const chunk of pair.early) upstream.write(chunk);
                pair.early = [];
              },
              data(_upstream, chunk) {
                if (!opts.replyDelayMs) return toClient(pair, chunk);
                const copy = new Uint8Array(chunk);
                setTimeout(() => toClient(pair, copy), opts.replyDelayMs);
              },
              close() {
                pair.client.end();
                pairs.delete(pair);
              },
              error() {
                pair.client.end();
              },
            },
          }).catch(() => client.end());
        },
        data(client, chunk) {
          const pair = client.data;
          fromClient();
          if (pair.upstream) pair.upstream.write(chunk);
          else pair.early.push(new Uint8Array(chunk));
        },
        close(client) {
          client.data?.upstream?.end();
          pairs.delete(client.data);
        },
        error(client) {
          client.data?.upstream?.end();
        },
      },
    });
  };
  listen();

  const cut = () => {
    listener?.stop(true);
    listener = null;
    for (const pair of pairs) {
      pair.client.terminate();
      pair.upstream?.terminate();
    }
    pairs.clear();
  };
  return {
    port,
    url(base) {
      const u = new URL(base);
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString();
    },
    cut,
    restore() {
      if (!listener) listen();
    },
    stop: cut,
    clientBursts: () => bursts,
    resetBursts() {
      bursts = 0;
      lastFromClient = false;
    },
  };
}
