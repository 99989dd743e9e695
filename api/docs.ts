// GET /docs: Swagger UI, served from the swagger-ui-dist package (no CDN), pointed at /openapi.json.
// "Try it out" on POST /upload/ lets a person upload a file from the browser; GET /docs/upload, a resumable one.
import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type Koa from 'koa';
import { AppError } from './errors.js';
import { pathParam } from './routes.js';
import { UPLOAD_PAGE, UPLOAD_SCRIPT } from './uploadPage.js';

const packageDir = (name: string) => path.dirname(createRequire(import.meta.url).resolve(`${name}/package.json`));
const swaggerDir = packageDir('swagger-ui-dist');

/** The files served under /docs/assets/, from the packages that ship them. */
const ASSETS: Record<string, { type: string; file: string }> = {
  'swagger-ui.css': { type: 'text/css; charset=utf-8', file: path.join(swaggerDir, 'swagger-ui.css') },
  'swagger-ui-bundle.js': {
    type: 'text/javascript; charset=utf-8',
    file: path.join(swaggerDir, 'swagger-ui-bundle.js'),
  },
  'favicon-32x32.png': { type: 'image/png', file: path.join(swaggerDir, 'favicon-32x32.png') },
  'tus.min.js': {
    type: 'text/javascript; charset=utf-8',
    file: path.join(packageDir('tus-js-client'), 'dist', 'tus.min.js'),
  },
};

// Scripts come from our own origin only: each page's script is a file, not an inline script.
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

/** The scripts written here rather than shipped by a package. */
const SCRIPTS: Record<string, string> = { 'init.js': INIT, 'upload.js': UPLOAD_SCRIPT };

export const docsPage: Koa.Middleware = (ctx) => {
  ctx.set('Content-Security-Policy', DOCS_CSP);
  ctx.type = 'text/html; charset=utf-8';
  ctx.body = PAGE;
};

export const uploadPage: Koa.Middleware = (ctx) => {
  ctx.set('Content-Security-Policy', DOCS_CSP);
  ctx.type = 'text/html; charset=utf-8';
  ctx.body = UPLOAD_PAGE;
};

export const docsAsset: Koa.Middleware = (ctx) => {
  const name = pathParam(ctx, 'asset');
  ctx.set('Cache-Control', 'public, max-age=86400');
  const script = Object.hasOwn(SCRIPTS, name) ? SCRIPTS[name] : undefined;
  if (script !== undefined) {
    ctx.type = 'text/javascript; charset=utf-8';
    ctx.body = script;
    return;
  }
  const asset = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
  if (!asset) throw new AppError('not_found', 'There is nothing at this address.');
  ctx.type = asset.type;
  ctx.body = createReadStream(asset.file);
};
