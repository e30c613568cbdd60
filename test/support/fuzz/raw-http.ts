/**
 * Raw HTTP/1.1 over a TCP socket, for what fetch refuses to send: invalid bytes in the request
 * line and headers, contradictory Content-Length, broken chunked encoding, huge headers.
 * Resolves with the status line's code, or 0 when the server closed without replying (a fair
 * answer to a broken request) — a hang past the timeout is reported as -1.
 */
import { connect } from "node:net";

export interface RawCase {
  label: string;
  bytes: Uint8Array;
  /** The server is right to keep waiting (the client promised more bytes): no reply is fine. */
  mayWait?: boolean;
}

export function rawRequest(port: number, bytes: Uint8Array, timeoutMs = 5000): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (status: number) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString("latin1");
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : status, text });
    };
    const socket = connect(port, "127.0.0.1", () => socket.write(bytes));
    const timer = setTimeout(() => finish(chunks.length ? 0 : -1), timeoutMs);
    socket.on("data", (d: Buffer) => {
      chunks.push(d);
      // One reply is enough: stop once headers and the announced body are in.
      const text = Buffer.concat(chunks).toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return;
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, end));
      if (!length || text.length - end - 4 >= Number(length[1])) finish(0);
    });
    socket.on("error", () => finish(0));
    socket.on("close", () => finish(0));
  });
}

const enc = (s: string) => Uint8Array.from(Buffer.from(s, "latin1"));
const concat = (...parts: Uint8Array[]) => Uint8Array.from(Buffer.concat(parts));

export function rawCases(token: string): RawCase[] {
  const auth = `Authorization: Bearer ${token}\r\n`;
  return [
    { label: "invalid UTF-8 bytes in the path", bytes: concat(enc("GET /v1/tools/"), new Uint8Array([0xff, 0xfe, 0xc0, 0xaf]), enc(` HTTP/1.1\r\nHost: localhost\r\n${auth}Connection: close\r\n\r\n`)) },
    { label: "NUL in the path", bytes: enc(`GET /v1/tools/a\u0000b HTTP/1.1\r\nHost: localhost\r\n${auth}Connection: close\r\n\r\n`) },
    { label: "invalid bytes in a header value", bytes: concat(enc("GET /v1/auth/me HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "), new Uint8Array([0xff, 0x00, 0xfe]), enc("\r\nConnection: close\r\n\r\n")) },
    { label: "invalid UTF-8 in Idempotency-Key", bytes: concat(enc(`POST /v1/api-keys HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Type: application/json\r\nContent-Length: 12\r\nIdempotency-Key: `), new Uint8Array([0xc3, 0x28, 0xa0, 0xa1]), enc('\r\nConnection: close\r\n\r\n{"name":"k"}')) },
    { label: "invalid UTF-8 in a JSON body", bytes: concat(enc(`POST /v1/api-keys HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Type: application/json\r\nContent-Length: 14\r\nConnection: close\r\n\r\n{"name":"`), new Uint8Array([0xff, 0xfe, 0xed]), enc('"}')) },
    { label: "two different Content-Length", bytes: enc(`POST /v1/api-keys HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Type: application/json\r\nContent-Length: 12\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{"name":"k"}`) },
    { label: "negative Content-Length", bytes: enc(`POST /v1/api-keys HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Type: application/json\r\nContent-Length: -1\r\nConnection: close\r\n\r\n{}`) },
    { label: "non-numeric Content-Length", bytes: enc(`POST /v1/api-keys HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Type: application/json\r\nContent-Length: abc\r\nConnection: close\r\n\r\n{}`) },
    { label: "Content-Length 2^64", bytes: enc(`POST /v1/api-keys HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Type: application/json\r\nContent-Length: 18446744073709551616\r\nConnection: close\r\n\r\n{}`) },
    { label: "Content-Length longer than the body, then silence", mayWait: true, bytes: enc(`POST /v1/api-keys HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"name":"k"}`) },
    { label: "chunked with a bad chunk size", bytes: enc(`POST /v1/api-keys HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`) },
    { label: "chunked and Content-Length (smuggling)", bytes: enc(`POST /v1/api-keys HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\nGET /v1/auth/me HTTP/1.1\r\nHost: localhost\r\n\r\n`) },
    { label: "chunked body far over the limit", bytes: enc(`POST /v1/api-keys HTTP/1.1\r\nHost: localhost\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n200000\r\n${"x".repeat(0x200000)}\r\n0\r\n\r\n`) },
    { label: "64 KiB header", bytes: enc(`GET /v1/auth/me HTTP/1.1\r\nHost: localhost\r\n${auth}X-Big: ${"a".repeat(64 * 1024)}\r\nConnection: close\r\n\r\n`) },
    { label: "1 MiB Authorization", bytes: enc(`GET /v1/auth/me HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${"a".repeat(1024 * 1024)}\r\nConnection: close\r\n\r\n`) },
    { label: "10,000 headers", bytes: enc(`GET /v1/auth/me HTTP/1.1\r\nHost: localhost\r\n${auth}${"X-A: b\r\n".repeat(10_000)}Connection: close\r\n\r\n`) },
    { label: "header without a colon", bytes: enc(`GET /healthz HTTP/1.1\r\nHost: localhost\r\nnocolon\r\nConnection: close\r\n\r\n`) },
    { label: "obs-fold header", bytes: enc(`GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\n b\r\nConnection: close\r\n\r\n`) },
    { label: "HTTP/1.0 without Host", bytes: enc(`GET /healthz HTTP/1.0\r\n\r\n`) },
    { label: "HTTP/9.9", bytes: enc(`GET /healthz HTTP/9.9\r\nHost: localhost\r\n\r\n`) },
    { label: "absolute-form URI to another host", bytes: enc(`GET http://example.com/v1/auth/me HTTP/1.1\r\nHost: example.com\r\n${auth}Connection: close\r\n\r\n`) },
    { label: "CONNECT", bytes: enc(`CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n`) },
    { label: "unknown method", bytes: enc(`BREW /v1/tools HTTP/1.1\r\nHost: localhost\r\n${auth}Connection: close\r\n\r\n`) },
    { label: "TRACE", bytes: enc(`TRACE /v1/tools HTTP/1.1\r\nHost: localhost\r\n${auth}Connection: close\r\n\r\n`) },
    { label: "garbage", bytes: Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256) },
    { label: "bare LF line endings", bytes: enc(`GET /healthz HTTP/1.1\nHost: x\n\n`) },
  ];
}
