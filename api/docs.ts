// GET /docs: Swagger UI, served from the swagger-ui-dist package (no CDN), pointed at /openapi.json.
// "Try it out" on POST /upload/ lets a person upload a file from the browser.
import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type Koa from 'koa';
import { AppError } from './errors.js';
import { pathParam } from './routes.js';

const distDir = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

// Scripts come from our own origin only: the initializer is a file, not an inline script.
const DOCS_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>file-processor API</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/init.js"></script>
</body>
</html>
`;

const INIT = `window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  tryItOutEnabled: true,
  persistAuthorization: true,
});
`;

export const docsPage: Koa.Middleware = (ctx) => {
  ctx.set('Content-Security-Policy', DOCS_CSP);
  ctx.type = 'text/html; charset=utf-8';
  ctx.body = PAGE;
};

export const docsAsset: Koa.Middleware = (ctx) => {
  const name = pathParam(ctx, 'asset');
  ctx.set('Cache-Control', 'public, max-age=86400');
  if (name === 'init.js') {
    ctx.type = 'text/javascript; charset=utf-8';
    ctx.body = INIT;
    return;
  }
  const type = ASSETS[name];
  if (!type) throw new AppError('not_found', 'There is nothing at this address.');
  ctx.type = type;
  ctx.body = createReadStream(path.join(distDir, name));
};
