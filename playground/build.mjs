/**
 * Builds the apart playground: bundles `src/` with esbuild into one ES module, copies the
 * page, its style sheet and apart's wasm next to it, and embeds the preloaded examples,
 * read from the repository now, so the built directory is all the page ever loads.
 *
 *   node playground/build.mjs [--js <dir with apart.js + apart_bg.wasm>] [--out <dir>] [--serve [port]]
 *
 * Defaults: --js target/js/web, --out target/playground (both under the repository root).
 */
import { build } from 'esbuild';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { serve } from './serve.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..');

// The examples: each editor's text is one file or several joined as further YAML
// documents (joining keeps the first file's line numbers, so findings read as the CLI's).
const SEED_POLICY = 'examples/seed/policy.yaml';
const SEED_MANIFESTS = ['examples/seed/cilium-helmrelease.yaml', 'examples/rendered/flux-controllers.yaml'];
const INCIDENT_CLUSTER = 'examples/incident/cluster.json';
const SPIRE_SERVER = 'examples/rendered/spire-server-statefulset.yaml';
const SPREAD = 'tests/cases/real-chart-self-spread-mutate';
const EXAMPLES = [
  {
    id: 'seed',
    title: 'Seed: spire-server’s namespace-blind anti-affinity (Cilium HelmRelease + Flux)',
    view: 'check',
    policy: SEED_POLICY,
    manifests: SEED_MANIFESTS,
    cluster: INCIDENT_CLUSTER,
    pod: SPIRE_SERVER,
  },
  {
    id: 'replica-spread',
    title: 'Chart: Argo CD repo-server spreading its own replicas, Flux term missing',
    view: 'check',
    policy: `${SPREAD}/policy.yaml`,
    manifests: [`${SPREAD}/input-repo-server.yaml`, `${SPREAD}/input-flux.yaml`],
  },
  {
    id: 'incident',
    title: 'Incident: the cluster the day spire-server-0 and kustomize-controller shared worker-2',
    view: 'audit',
    policy: SEED_POLICY,
    manifests: [SPIRE_SERVER, 'examples/rendered/flux-controllers.yaml'],
    cluster: INCIDENT_CLUSTER,
    pod: SPIRE_SERVER,
  },
];

function parseArgs(argv) {
  const args = { js: join(repo, 'target/js/web'), out: join(repo, 'target/playground'), serve: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--js' || a === '--out') {
      if (!argv[i + 1]) throw new Error(`${a} needs a directory`);
      args[a.slice(2)] = resolve(argv[++i]);
    } else if (a === '--serve') {
      args.serve = /^\d+$/.test(argv[i + 1] ?? '') ? Number(argv[++i]) : 8080;
    } else {
      throw new Error(`unknown argument ${a} (usage: build.mjs [--js DIR] [--out DIR] [--serve [PORT]])`);
    }
  }
  return args;
}

/** One editor's text: the files joined as YAML documents. */
async function joined(files) {
  let text = '';
  for (const file of [files].flat()) {
    const part = await readFile(join(repo, file), 'utf8');
    if (text && !text.endsWith('\n')) text += '\n';
    if (text && !part.startsWith('---')) text += '---\n';
    text += part;
  }
  return text;
}

async function readExamples() {
  const out = [];
  for (const e of EXAMPLES) {
    const example = { id: e.id, title: e.title, view: e.view };
    for (const key of ['policy', 'manifests', 'cluster', 'pod']) {
      example[key] = e[key] ? await joined(e[key]) : '';
    }
    // Where the texts came from, shown under the select box.
    example.sources = [...new Set([e.policy, e.manifests, e.cluster, e.pod].flat().filter(Boolean))];
    out.push(example);
  }
  return out;
}

/** esbuild plugin: `apart` is the web build, `apart:examples` the examples as a module. */
function playgroundPlugin(jsDir, examples) {
  return {
    name: 'apart-playground',
    setup(b) {
      b.onResolve({ filter: /^apart$/ }, () => ({ path: join(jsDir, 'apart.js') }));
      b.onResolve({ filter: /^apart:examples$/ }, () => ({ path: 'examples', namespace: 'apart-examples' }));
      b.onLoad({ filter: /.*/, namespace: 'apart-examples' }, () => ({
        contents: `export default ${JSON.stringify(examples)};`,
        loader: 'js',
      }));
    },
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  for (const f of ['apart.js', 'apart_bg.wasm']) {
    if (!existsSync(join(args.js, f))) {
      throw new Error(
        `${join(args.js, f)} is missing: build apart's JS package first (cargo xtask build), or pass --js`,
      );
    }
  }
  await mkdir(args.out, { recursive: true });
  const examples = await readExamples();
  await build({
    entryPoints: [join(here, 'src/main.js')],
    outfile: join(args.out, 'main.js'),
    bundle: true,
    format: 'esm',
    target: 'es2022',
    minify: true,
    sourcemap: 'linked',
    legalComments: 'linked',
    logLevel: 'warning',
    plugins: [playgroundPlugin(args.js, examples)],
  });
  await copyFile(join(here, 'index.html'), join(args.out, 'index.html'));
  await copyFile(join(here, 'style.css'), join(args.out, 'style.css'));
  await copyFile(join(args.js, 'apart_bg.wasm'), join(args.out, 'apart_bg.wasm'));

  const rel = relative(process.cwd(), args.out) || '.';
  for (const f of ['index.html', 'style.css', 'main.js', 'apart_bg.wasm']) {
    const bytes = await readFile(join(args.out, f));
    const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
    console.log(`${join(rel, f).padEnd(40)} ${kb(bytes.length).padStart(11)}  (gzip ${kb(gzipSync(bytes).length)})`);
  }
  if (args.serve !== null) {
    const { url } = await serve(args.out, args.serve);
    console.log(`serving ${rel} at ${url} (Ctrl-C to stop)`);
  }
}

main().catch((e) => {
  console.error(`build.mjs: ${e.message}`);
  process.exit(1);
});
