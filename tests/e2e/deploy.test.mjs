// The deployment files of tools/deploy, each checked by the tool that reads it:
// `meson install --destdir` lays out the binary, the SQL, the unit, the man page and
// the client package; `systemd-analyze verify` reads the installed unit (and finds the
// installed binary and man page); `man -l` renders the man page without warnings and it
// names every flag of `reactor --help`; `haproxy -c` and `nginx -t` check their
// configurations. docs/deployment.md describes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, existsSync, statSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, BIN, tempDir } from './lib.mjs';

const exec = promisify(execFile);
const run = async (cmd, args, opts = {}) => {
  try {
    const { stdout, stderr } = await exec(cmd, args, { maxBuffer: 16 << 20, ...opts });
    return { code: 0, stdout, stderr };
  } catch (e) {
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(e) };
  }
};
const BUILD = path.dirname(path.dirname(BIN));  // build/src/reactor -> build
const DEPLOY = path.join(ROOT, 'tools/deploy');

let dest = null;
async function installed() {
  if (dest) return dest;
  dest = tempDir('reactor-install-');
  const r = await run('meson', ['install', '-C', BUILD, '--no-rebuild', '--quiet', '--destdir', dest]);
  assert.equal(r.code, 0, `meson install failed:\n${r.stdout}\n${r.stderr}`);
  return dest;
}
async function prefix() {
  const r = await run('meson', ['introspect', BUILD, '--buildoptions']);
  return JSON.parse(r.stdout).find((o) => o.name === 'prefix').value;
}

test('meson install lays out the binary, SQL migrations, systemd unit, man page and client package', async () => {
  const d = await installed();
  const p = path.join(d, await prefix());
  const bin = path.join(p, 'bin/reactor');
  assert.ok(existsSync(bin) && (statSync(bin).mode & 0o111), 'bin/reactor, executable');
  const v = await run(bin, ['--version']);
  assert.match(v.stdout + v.stderr, /reactor \d+\.\d+\.\d+/);
  for (const f of ['001_schema.sql', '001_schema.down.sql', '002_tick.sql', '003_notify_mac.sql']) {
    const got = readFileSync(path.join(p, 'share/reactor/sql/migrations', f), 'utf8');
    assert.equal(got, readFileSync(path.join(ROOT, 'sql/migrations', f), 'utf8'), f);
  }
  const unit = readFileSync(path.join(p, 'lib/systemd/system/reactor.service'), 'utf8');
  assert.match(unit, new RegExp(`^ExecStart=${path.join(await prefix(), 'bin/reactor')} serve`, 'm'), 'ExecStart names the installed binary');
  assert.doesNotMatch(unit, /@\w+@/, 'every placeholder filled in');
  assert.ok(existsSync(path.join(p, 'share/man/man1/reactor.1')));
  for (const f of ['index.js', 'index.d.ts', 'package.json', 'README.md']) {
    assert.ok(existsSync(path.join(p, 'share/reactor/clients/js', f)), `clients/js/${f}`);
  }
  for (const f of ['haproxy.cfg', 'nginx.conf']) assert.ok(existsSync(path.join(p, 'share/reactor/deploy', f)), f);
});

test('systemd-analyze verify accepts the installed unit; it carries the sandboxing options', async () => {
  const d = await installed();
  const pre = await prefix();
  const p = path.join(d, pre);
  const text = readFileSync(path.join(p, 'lib/systemd/system/reactor.service'), 'utf8');
  for (const line of ['DynamicUser=yes', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes',
    'PrivateTmp=yes', 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX', 'SystemCallFilter=@system-service',
    'LimitNOFILE=131072', 'Restart=on-failure', 'EnvironmentFile=/etc/reactor/reactor.env', 'KillSignal=SIGTERM']) {
    assert.match(text, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), line);
  }
  // verify checks that ExecStart is executable on this host and that `man reactor(1)`
  // resolves: point both at the installed tree (the rest of the unit unchanged).
  const unitDir = tempDir('reactor-unit-');
  const copy = path.join(unitDir, 'reactor.service');
  writeFileSync(copy, text.replace(`ExecStart=${path.join(pre, 'bin/reactor')}`, `ExecStart=${path.join(p, 'bin/reactor')}`));
  const r = await run('systemd-analyze', ['verify', copy], { env: { ...process.env, MANPATH: path.join(p, 'share/man'), SYSTEMD_LOG_COLOR: '0' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr.trim(), '', `systemd-analyze verify warned:\n${r.stderr}`);
  // And it does complain about a broken unit (the check can fail).
  writeFileSync(copy, readFileSync(copy, 'utf8').replace('ProtectSystem=strict', 'ProtectSystem=sometimes'));
  const bad = await run('systemd-analyze', ['verify', copy], { env: { ...process.env, MANPATH: path.join(p, 'share/man') } });
  assert.match(bad.stderr, /ProtectSystem|protect system/i);
});

test('man -l renders reactor(1) without warnings, naming every flag of --help', async () => {
  const page = path.join(DEPLOY, 'reactor.1');
  const r = await run('man', ['--warnings=all', '-l', page], { env: { ...process.env, MANWIDTH: '100', LANG: 'C', MAN_KEEP_FORMATTING: '' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr.trim(), '', `groff warnings:\n${r.stderr}`);
  const text = r.stdout.replace(/.\x08/g, '').replace(/\u2010/g, '-');
  for (const h of ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'SIGNALS', 'EXIT STATUS', 'SEE ALSO']) {
    assert.match(text, new RegExp(`^${h}$`, 'm'), h);
  }
  const help = await run(BIN, ['--help']);
  const flags = [...new Set([...help.stdout.matchAll(/(?:^|[ ,])(--[a-z][a-z0-9-]+)/gm)].map((m) => m[1]))];
  assert.ok(flags.length > 30, `flags from --help: ${flags}`);
  const missing = flags.filter((f) => f !== '--help' && !text.includes(f));
  assert.deepEqual(missing, [], 'flags of reactor --help missing from reactor(1)');
});

test('haproxy -c accepts tools/deploy/haproxy.cfg, and refuses it without its addresses', async () => {
  const cfg = path.join(DEPLOY, 'haproxy.cfg');
  const env = { ...process.env, REACTOR_LB_BIND: '127.0.0.1:18080', REACTOR_REPLICA_1: '127.0.0.1:18081',
    REACTOR_REPLICA_2: '127.0.0.1:18082', REACTOR_REPLICA_3: '127.0.0.1:18083' };
  const r = await run('haproxy', ['-c', '-f', cfg], { env });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /Configuration file is valid/);
  const text = readFileSync(cfg, 'utf8');
  assert.match(text, /uri \/readyz/);
  assert.match(text, /timeout tunnel/);
  const bare = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('REACTOR_')) delete bare[k];
  const bad = await run('haproxy', ['-c', '-f', cfg], { env: bare });
  assert.notEqual(bad.code, 0, 'unset addresses are an error');
});

test('nginx -t accepts tools/deploy/nginx.conf under its own prefix with a throwaway certificate', async () => {
  const dir = tempDir('reactor-nginx-');
  copyFileSync(path.join(DEPLOY, 'nginx.conf'), path.join(dir, 'nginx.conf'));
  for (const d of ['certs', 'logs', 'tmp']) mkdirSync(path.join(dir, d));
  const cert = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=reactor.example.com',
    '-keyout', path.join(dir, 'certs/reactor.key'), '-out', path.join(dir, 'certs/reactor.crt')]);
  assert.equal(cert.code, 0, cert.stderr);
  const r = await run('nginx', ['-t', '-e', 'stderr', '-p', `${dir}/`, '-c', path.join(dir, 'nginx.conf')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /test is successful/);
  // The check can fail: a WebSocket location without the Upgrade header map is refused.
  writeFileSync(path.join(dir, 'nginx.conf'), readFileSync(path.join(dir, 'nginx.conf'), 'utf8').replace('map $http_upgrade $connection_upgrade', 'map $http_upgrade $connection_upgrade_x'));
  const bad = await run('nginx', ['-t', '-e', 'stderr', '-p', `${dir}/`, '-c', path.join(dir, 'nginx.conf')]);
  assert.notEqual(bad.code, 0);
});
