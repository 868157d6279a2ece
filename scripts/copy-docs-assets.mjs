// The build's last step: copies the browser bundle GET /docs runs into dist/docs/scalar.js, where
// src/api/docs.ts serves it from. @scalar/api-reference (Vue and all) is then needed only to build,
// so it is a dev dependency and a production install stays small.
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const target = fileURLToPath(new URL('../dist/docs/scalar.js', import.meta.url));

let source;
try {
  source = require.resolve('@scalar/api-reference/browser/standalone.js');
} catch {
  console.error('copy-docs-assets: @scalar/api-reference is not installed; it is a dev dependency, so build after `npm ci`, not after `npm ci --omit=dev`.');
  process.exit(1);
}
mkdirSync(dirname(target), { recursive: true });
copyFileSync(source, target);
