/**
 * Swagger UI with every asset embedded in the executable (no CDN, works offline).
 *
 * Usage (the document comes from platform/http/openapi.ts):
 *
 *   import { gatewayDocument } from "../roles/gateway/openapi";
 *   import { swaggerUi } from "./platform/http/swagger-ui";
 *
 *   app
 *     .use(gatewayDocument("/swagger/json"))
 *     .use(swaggerUi({ path: "/swagger", specPath: "/swagger/json" }));
 *
 * Routes (all hidden from the OpenAPI document):
 *   GET {path}                          HTML page (no inline script: CSP `script-src 'self'` friendly)
 *   GET {path}/assets/{name}            swagger-ui.css, swagger-ui-bundle.js, favicons, initializer
 *   GET {path}/oauth2-redirect.html     OAuth2 redirect page (only used by "Authorize" with OAuth2 flows)
 *
 * Asset URLs carry `?v=<swagger-ui-dist version>` and are served with a one-year
 * immutable Cache-Control; the HTML page and the generated initializer are `no-cache`.
 */
import { Elysia } from "elysia";
import { requestInfo } from "./app";
import { errorResponse } from "./errors";
// Imported `with { type: "file" }`: `bun build --compile` embeds the files in the binary.
// @ts-ignore -- no type declarations for asset imports
import cssPath from "swagger-ui-dist/swagger-ui.css" with { type: "file" };
// @ts-ignore -- no type declarations for asset imports
import bundlePath from "swagger-ui-dist/swagger-ui-bundle.js" with { type: "file" };
// @ts-ignore -- no type declarations for asset imports
import favicon32Path from "swagger-ui-dist/favicon-32x32.png" with { type: "file" };
// @ts-ignore -- no type declarations for asset imports
import favicon16Path from "swagger-ui-dist/favicon-16x16.png" with { type: "file" };
// @ts-ignore -- no type declarations for asset imports
import oauth2RedirectJsPath from "swagger-ui-dist/oauth2-redirect.js" with { type: "file" };
import swaggerUiDistPkg from "swagger-ui-dist/package.json";

export interface SwaggerUiOptions {
  /** Where the UI is served. Default "/swagger". */
  path?: string;
  /** URL of the OpenAPI JSON document. Default "/swagger/json". */
  specPath?: string;
  /** Page title. Default "AgentOS API". */
  title?: string;
}

const VERSION: string = (swaggerUiDistPkg as { version: string }).version;
const IMMUTABLE = "public, max-age=31536000, immutable";
const NO_CACHE = "no-cache";

interface Asset {
  file: string;
  type: string;
}

const ASSETS: Record<string, Asset> = {
  "swagger-ui.css": { file: cssPath, type: "text/css; charset=utf-8" },
  "swagger-ui-bundle.js": { file: bundlePath, type: "text/javascript; charset=utf-8" },
  "favicon-32x32.png": { file: favicon32Path, type: "image/png" },
  "favicon-16x16.png": { file: favicon16Path, type: "image/png" },
  "oauth2-redirect.js": { file: oauth2RedirectJsPath, type: "text/javascript; charset=utf-8" },
};

function trimSlash(p: string): string {
  const t = p.replace(/\/+$/, "");
  return t === "" ? "" : t.startsWith("/") ? t : `/${t}`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function swaggerUi({ path = "/swagger", specPath = "/swagger/json", title = "AgentOS API" }: SwaggerUiOptions = {}) {
  const base = trimSlash(path);
  const assets = `${base}/assets`;
  const q = `?v=${encodeURIComponent(VERSION)}`;

  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="${assets}/swagger-ui.css${q}">
<link rel="icon" type="image/png" href="${assets}/favicon-32x32.png${q}" sizes="32x32">
<link rel="icon" type="image/png" href="${assets}/favicon-16x16.png${q}" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="${assets}/swagger-ui-bundle.js${q}" charset="utf-8"></script>
<script src="${assets}/swagger-initializer.js" charset="utf-8"></script>
</body>
</html>
`;

  const initializer = `window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: ${JSON.stringify(specPath)},
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    oauth2RedirectUrl: window.location.origin + ${JSON.stringify(`${base}/oauth2-redirect.html`)},
  });
};
`;

  // swagger-ui-dist's oauth2-redirect.html only loads oauth2-redirect.js relatively; ours points at the asset.
  const oauth2Html = `<!doctype html>
<html lang="en-US">
<body>
<script src="${assets}/oauth2-redirect.js${q}"></script>
</body>
</html>
`;

  const hidden = { detail: { hide: true } };

  return new Elysia({ name: "swagger-ui", seed: { base, specPath, title } })
    .get(
      base === "" ? "/" : base,
      () => new Response(html, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": NO_CACHE } }),
      hidden,
    )
    .get(
      `${assets}/swagger-initializer.js`,
      () =>
        new Response(initializer, {
          headers: { "content-type": "text/javascript; charset=utf-8", "cache-control": NO_CACHE },
        }),
      hidden,
    )
    .get(
      `${base}/oauth2-redirect.html`,
      () =>
        new Response(oauth2Html, {
          headers: { "content-type": "text/html; charset=utf-8", "cache-control": NO_CACHE },
        }),
      hidden,
    )
    .get(
      `${assets}/:name`,
      ({ params, request, set }) => {
        const asset = Object.hasOwn(ASSETS, params.name) ? ASSETS[params.name] : undefined;
        if (!asset) {
          set.status = 404;
          return errorResponse(404, "not_found", `No Swagger UI asset '${params.name}'.`, requestInfo(request).id);
        }
        return new Response(Bun.file(asset.file), {
          headers: { "content-type": asset.type, "cache-control": IMMUTABLE },
        });
      },
      hidden,
    );
}
