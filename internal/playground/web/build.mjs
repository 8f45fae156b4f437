// Builds the playground into ../dist: one JS and one CSS bundle, the icon, and the fonts and
// images that GraphiQL's stylesheet inlines as data: URLs, moved into files of their own
// so that the page's Content-Security-Policy can forbid data: and the browser fetches
// only the fonts it uses. Every file is named by a hash of its content, so the server
// can let browsers cache them for good. Same lockfile, same bytes: nothing here depends
// on the time, the machine or the order of the file system.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, '..', 'dist');

const hashed = (name, ext, content) =>
  `${name}-${createHash('sha256').update(content).digest('hex').slice(0, 12)}.${ext}`;

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { playground: 'main.jsx' },
  outdir: 'out', // in memory only: write is false
  write: false,
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2022', 'chrome111', 'firefox111', 'safari16'],
  jsx: 'automatic',
  define: { 'process.env.NODE_ENV': '"production"' },
  legalComments: 'eof',
  charset: 'utf8',
  logLevel: 'warning',
});

const files = new Map(); // name -> content
const extensions = { 'font/woff2': 'woff2', 'font/woff': 'woff', 'image/png': 'png', 'image/svg+xml': 'svg' };
for (const out of result.outputFiles) {
  if (out.path.endsWith('.js')) {
    files.set(hashed('playground', 'js', out.contents), out.contents);
    continue;
  }
  // url(data:font/woff2;base64,...) or url("data:image/png;base64,...")
  const css = out.text.replace(/url\(\s*(["']?)data:([a-z0-9+./-]+);base64,([A-Za-z0-9+/=]+)\1\s*\)/g, (match, _q, type, data) => {
    const ext = extensions[type];
    if (!ext) throw new Error(`the stylesheet inlines ${type}, which the build does not know how to name`);
    const bytes = Buffer.from(data, 'base64');
    const name = hashed(type.startsWith('font/') ? 'font' : 'image', ext, bytes);
    files.set(name, bytes);
    return `url(${name})`;
  });
  if (/url\(\s*["']?(data:|[a-z]+:\/\/|\/\/)/i.test(css) || /@import/i.test(css)) {
    throw new Error('the stylesheet still loads something from elsewhere: the playground must only load its own files');
  }
  files.set(hashed('playground', 'css', css), Buffer.from(css));
}

const favicon = readFileSync(join(here, 'favicon.svg'));
files.set(hashed('favicon', 'svg', favicon), favicon);

mkdirSync(dist, { recursive: true });
for (const name of readdirSync(dist)) rmSync(join(dist, name));
const names = [...files.keys()].sort();
for (const name of names) writeFileSync(join(dist, name), files.get(name));
const bytes = (list) => list.reduce((n, name) => n + files.get(name).length, 0);
const bundles = names.filter((name) => name.startsWith('playground-'));
console.log(`playground: ${names.length} files in internal/playground/dist, ${bytes(names)} bytes; ` +
  bundles.map((name) => `${name} ${bytes([name])}`).join(', '));
