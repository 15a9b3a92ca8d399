// SPDX-License-Identifier: Apache-2.0
// The two npm packages as a user gets them: `npm pack` of clients/js and
// clients/react, their tarballs installed into a scratch app without the
// registry (react and @types/react linked from this checkout's
// node_modules, as an app would have them), then imported from that app
// as ES modules and type-checked with tsc against a small usage file.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const clients = fileURLToPath(new URL('../..', import.meta.url));
const npm = (args, cwd) => execFileSync('npm', args, {
  cwd, encoding: 'utf8', timeout: 60000, stdio: ['ignore', 'pipe', 'pipe'],
  env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' },
});

let work, app;
const packed = {};

before(() => {
  work = mkdtempSync(join(tmpdir(), 'upm-pack-'));
  for (const dir of ['js', 'react']) {
    const [info] = JSON.parse(npm(['pack', '--json', '--pack-destination', work], join(clients, dir)));
    packed[dir] = info;
  }
  app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({
    name: 'scratch-app', version: '1.0.0', private: true, type: 'module',
    dependencies: {
      'mod-upload-progress-client': `file:${join(work, packed.js.filename)}`,
      'mod-upload-progress-react': `file:${join(work, packed.react.filename)}`,
      react: `file:${join(clients, 'node_modules', 'react')}`,
      '@types/react': `file:${join(clients, 'node_modules', '@types', 'react')}`,
    },
  }, null, 2));
  npm(['install', '--offline', '--no-package-lock', '--ignore-scripts', '--loglevel=error'], app);
});

after(() => { if (work) rmSync(work, { recursive: true, force: true }); });

test('each tarball holds the module, its types, README, LICENSE and package.json, and nothing else', () => {
  const want = {
    js: ['LICENSE', 'README.md', 'package.json', 'upload-progress.d.ts', 'upload-progress.mjs'],
    react: ['LICENSE', 'README.md', 'index.d.ts', 'index.mjs', 'package.json'],
  };
  for (const dir of ['js', 'react']) {
    const files = packed[dir].files.map((f) => f.path).sort();
    assert.deepEqual(files, want[dir], `${dir}: files in the tarball`);
  }
  assert.equal(packed.js.name, 'mod-upload-progress-client');
  assert.equal(packed.react.name, 'mod-upload-progress-react');
});

test('the react package depends on the client and takes react as a peer', () => {
  const pkg = JSON.parse(readFileSync(join(app, 'node_modules', 'mod-upload-progress-react', 'package.json'), 'utf8'));
  assert.equal(pkg.dependencies['mod-upload-progress-client'], packed.js.version);
  assert.ok(pkg.peerDependencies.react, 'react is a peer dependency');
  assert.equal(pkg.dependencies.react, undefined, 'react is not a dependency');
  assert.equal(pkg.license, 'Apache-2.0');
});

test('both import as ES modules from the app, the hooks using the installed client', () => {
  const script = `
    import { connect, VERSION, compareIds } from 'mod-upload-progress-client';
    import connectDefault from 'mod-upload-progress-client';
    import * as hooks from 'mod-upload-progress-react';
    const client = import.meta.resolve('mod-upload-progress-client');
    console.log(JSON.stringify({
      connect: typeof connect, same: connect === connectDefault, VERSION, cmp: compareIds('1-2', '1-3'),
      hooks: Object.keys(hooks).sort(), client,
    }));`;
  const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script],
                                      { cwd: app, encoding: 'utf8', timeout: 30000 }));
  assert.equal(out.connect, 'function');
  assert.ok(out.same, 'the default export is connect');
  assert.equal(out.VERSION, packed.js.version);
  assert.equal(out.cmp, -1);
  for (const name of ['UploadProgressProvider', 'useUploadProgress', 'useWebSocket', 'sharedConnectionCount']) {
    assert.ok(out.hooks.includes(name), `the react package exports ${name}`);
  }
  const resolved = realpathSync(fileURLToPath(out.client));
  assert.ok(resolved.startsWith(realpathSync(app)), `the client comes from the app's node_modules (${resolved})`);
});

test('tsc type-checks a usage file against both packages, and catches a wrong one', () => {
  const tsc = join(clients, 'node_modules', 'typescript', 'bin', 'tsc');
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true,
      noEmit: true, jsx: 'react-jsx', types: [], skipLibCheck: false,
    },
    files: ['usage.tsx'],
  }));
  const usage = (bad) => `
    import { connect, type Connection, type Message } from 'mod-upload-progress-client';
    import { UploadProgressProvider, useUploadProgress, useWebSocket } from 'mod-upload-progress-react';

    const conn: Connection = connect({ url: { sse: '/stream' }, token: async () => 'jwt', transport: 'sse' });
    const off: () => void = conn.on('upload_progress', (m: Message) => { void m.photoId; });
    off();

    function Bar({ jobId }: { jobId: string }) {
      const { status, progress, reset } = useUploadProgress({ jobId });
      const n: number = reset;
      return <progress max={100} value={progress ?? 0} title={status + n} />;
    }
    function Feed({ projectId }: { projectId: string }) {
      const { events } = useWebSocket(projectId, { maxEvents: 10 });
      return <ul>{events.map((m) => <li key={m.id}>{m.type}</li>)}</ul>;
    }
    export const page = (
      <UploadProgressProvider url={{ websocket: '/ws', sse: '/stream' }} token="t">
        <Bar jobId="j1" /><Feed projectId="p1" />
      </UploadProgressProvider>
    );
    ${bad ? "connect({ url: '/x', transport: 'carrier-pigeon' });" : ''}
  `;
  const run = () => execFileSync(process.execPath, [tsc, '-p', app], { cwd: app, encoding: 'utf8', timeout: 60000 });
  writeFileSync(join(app, 'usage.tsx'), usage(false));
  try {
    run();
  } catch (e) {
    assert.fail(`tsc: ${e.stdout}${e.stderr}`);
  }
  writeFileSync(join(app, 'usage.tsx'), usage(true));
  assert.throws(run, (e) => /carrier-pigeon/.test(e.stdout), 'tsc refuses a transport the types do not have');
});
