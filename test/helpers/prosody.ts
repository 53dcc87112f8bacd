// Real Prosody (Debian package, 0.12.x) for integration tests: one private
// instance per call, on 127.0.0.1 only, with its own temp dir, config, data and
// log, started as a child process in the foreground (-F) and always stopped by
// PID. Default is "backend mode": no TLS at all, loopback counted as secure by
// test/harness/plugins/mod_secure_interfaces.lua, so SASL PLAIN works in clear.
// Never silently skips: a missing `prosody` binary is an error with the fix.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { mkdtemp, mkdir, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PLUGIN_DIR = fileURLToPath(new URL('../harness/plugins/', import.meta.url));

const INSTALL_HINT =
  'Prosody is required for the integration tests and was not found in PATH. ' +
  'Install it (Debian/Ubuntu, as root): apt-get install -y --no-install-recommends prosody prosody-modules ' +
  '(with a /usr/sbin/policy-rc.d that exits 101 so the system service does not start; .ci/run does this), ' +
  'or run only the unit tests: npm run test:unit';

const BASE_MODULES = ['roster', 'saslauth', 'disco', 'ping', 'register', 'time', 'version', 'uptime', 'posix', 'admin_shell'];

export interface ProsodyOptions {
  /** VirtualHosts; the first one is `domain`. Default `['localhost']`. */
  hosts?: string[];
  /** Add `Component "conference.<host>" "muc"` for every host (open room creation, no locking). Default true. */
  muc?: boolean;
  /** Appended to modules_enabled. */
  extraModules?: string[];
  /** Appended to modules_disabled (`s2s` and `offline` are handled by their own options). */
  disabledModules?: string[];
  /** Raw Lua appended to the global section (before the VirtualHost lines). */
  extraConfig?: string;
  /** Raw Lua written inside every VirtualHost section. */
  hostConfig?: string;
  /** Enable s2s on its own free loopback port (`s2sPort`). Default false: mod_s2s disabled. */
  s2s?: boolean;
  /** Generate a self-signed cert (openssl) and keep mod_tls, so STARTTLS is offered. Default false. */
  tls?: boolean;
  /** With `tls`: also listen for direct TLS (XEP-0368) on `directTlsPort`. */
  directTls?: boolean;
  /** Local addresses whose c2s connections count as secure. Default `['127.0.0.1']`; `[]` turns it off. */
  secureInterfaces?: string[];
  /** c2s_require_encryption. Default true (loopback still works through secureInterfaces). */
  requireEncryption?: boolean;
  /** allow_unencrypted_plain_auth. Default false. */
  allowUnencryptedPlain?: boolean;
  /** Keep mod_offline (it is auto-loaded). Default false: messages to offline users are dropped, not stored. */
  offline?: boolean;
  /** Minimum log level. Default 'info' (debug logs every stanza: slow). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** c2s port to use (e.g. to restart a server where it was). Default: a free one. */
  port?: number;
  /** How long to wait for the c2s port. Default 15000 ms. */
  startTimeoutMs?: number;
  /**
   * External (XEP-0114) components: `Component "jid"` with `component_secret`,
   * and `component_ports` on a free loopback port (`componentPort`).
   */
  components?: { jid: string; secret: string }[];
  /**
   * Prosody's own XMPP over WebSocket endpoint (mod_websocket, part of
   * Prosody 0.12; it loads mod_http): ws://127.0.0.1:`httpPort`/xmpp-websocket,
   * counted as secure so that PLAIN works over it.
   */
  websocket?: boolean;
}

export interface ProsodyInstance {
  host: '127.0.0.1';
  port: number;
  s2sPort: number | undefined;
  directTlsPort: number | undefined;
  /** The XEP-0114 component port, when `components` were given. */
  componentPort: number | undefined;
  /** The HTTP port of mod_websocket (`websocket: true`). */
  httpPort: number | undefined;
  dir: string;
  configPath: string;
  logPath: string;
  /** Present when started with `tls: true`. */
  certPath: string | undefined;
  keyPath: string | undefined;
  domain: string;
  hosts: readonly string[];
  pid: number;
  /** Create an account by writing its internal_plain account file (no prosodyctl start-up cost). */
  createUser(username: string, password: string, host?: string): Promise<void>;
  /** Create an account the slow official way (`prosodyctl register`). */
  registerWithProsodyctl(username: string, password: string, host?: string): Promise<void>;
  /** Run `prosodyctl --config <configPath> ...args` (e.g. `['shell', 'c2s:show()']`). */
  prosodyctl(args: string[], timeoutMs?: number): Promise<{ code: number; stdout: string; stderr: string }>;
  logText(): Promise<string>;
  /** SIGTERM, SIGKILL after 5 s, then remove the dir (kept when PROSODY_KEEP_DIR=1). Idempotent. */
  stop(): Promise<void>;
}

let prosodyPath: string | null | undefined;

function findInPath(bin: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, bin);
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

/** True when a `prosody` executable is in PATH (and prosodyctl next to it). */
export function haveProsody(): boolean {
  prosodyPath ??= findInPath('prosody');
  return prosodyPath !== null && findInPath('prosodyctl') !== null;
}

/** A port that was free on 127.0.0.1 a moment ago (bind :0, read, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr !== null && typeof addr === 'object') resolve(addr.port);
        else reject(new Error('could not read the port of a probe server'));
      });
    });
  });
}

function luaString(s: string): string {
  // Any byte outside printable ASCII, and " and \, as a decimal escape: valid Lua 5.1-5.4.
  let out = '"';
  for (const byte of Buffer.from(s, 'utf8')) {
    if (byte >= 0x20 && byte < 0x7f && byte !== 0x22 && byte !== 0x5c) out += String.fromCharCode(byte);
    else out += `\\${byte.toString().padStart(3, '0')}`;
  }
  return out + '"';
}

function luaList(items: readonly string[]): string {
  return `{ ${items.map(luaString).join(', ')} }`;
}

/** Prosody's util.datamanager path encoding: every non-alphanumeric byte becomes %xx (lower-case hex). */
function datamanagerEncode(s: string): string {
  return s.replace(/[^A-Za-z0-9]/g, (c) =>
    [...Buffer.from(c, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join(''),
  );
}

/** Usernames the fast path accepts: already in nodeprep'd form and unambiguous. */
const SIMPLE_LOCALPART = /^[a-z0-9][a-z0-9._-]{0,62}$/;

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout, stderr: err !== null && err.killed ? `${stderr}\n(killed after ${timeoutMs} ms)` : stderr });
    });
  });
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Whether something accepts TCP connections on 127.0.0.1:port (bounded: 500 ms). */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

// Belt and braces: if a test file forgets stop() or the runner exits early,
// do not leave Prosody processes behind (they would keep loopback ports).
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

async function makeCert(dir: string, hosts: readonly string[]): Promise<{ certPath: string; keyPath: string }> {
  const certDir = path.join(dir, 'certs');
  const certPath = path.join(certDir, 'server.crt');
  const keyPath = path.join(certDir, 'server.key');
  const san = hosts.flatMap((h) => [`DNS:${h}`, `DNS:conference.${h}`]).join(',');
  const res = await run(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '30', '-subj', `/CN=${hosts[0]}`,
      '-addext', `subjectAltName=${san}`, '-keyout', keyPath, '-out', certPath],
    20_000,
  );
  if (res.code !== 0) throw new Error(`openssl could not make a test certificate (exit ${res.code}): ${res.stderr.trim()}`);
  await chmod(keyPath, 0o600);
  return { certPath, keyPath };
}

interface Ports {
  c2s: number;
  s2s: number | undefined;
  directTls: number | undefined;
  component: number | undefined;
  http: number | undefined;
}

function renderConfig(o: {
  opts: ProsodyOptions;
  dir: string;
  hosts: readonly string[];
  ports: Ports;
  cert: { certPath: string; keyPath: string } | undefined;
}): string {
  const { opts, dir, hosts, ports, cert } = o;
  const secure = opts.secureInterfaces ?? ['127.0.0.1'];
  const modules = [...BASE_MODULES];
  if (cert !== undefined) modules.push('tls');
  if (secure.length > 0) modules.push('secure_interfaces');
  if (opts.websocket === true) modules.push('websocket');
  modules.push(...(opts.extraModules ?? []));
  const disabled = [...(opts.disabledModules ?? [])];
  if (cert === undefined) disabled.push('tls');
  if (opts.s2s !== true) disabled.push('s2s');
  if (opts.offline !== true) disabled.push('offline');
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const iface = luaList(['127.0.0.1']);

  const lines = [
    '-- generated by test/helpers/prosody.ts',
    `run_as_root = ${isRoot}`,
    `pidfile = ${luaString(path.join(dir, 'prosody.pid'))}`,
    `data_path = ${luaString(path.join(dir, 'data'))}`,
    // Debian installs prosody-modules into the core plugin dir; this adds ours.
    `plugin_paths = ${luaList([PLUGIN_DIR])}`,
    // Our own (possibly empty) dir, so certmanager does not index /etc/prosody/certs.
    `certificates = ${luaString(path.join(dir, 'certs'))}`,
    'admins = { }',
    `modules_enabled = ${luaList(modules)}`,
    `modules_disabled = ${luaList(disabled)}`,
    `interfaces = ${iface}`,
    `local_interfaces = ${iface}`,
    `c2s_ports = { ${ports.c2s} }`,
    `c2s_interfaces = ${iface}`,
    ports.directTls !== undefined ? `c2s_direct_tls_ports = { ${ports.directTls} }` : 'c2s_direct_tls_ports = { }',
    `c2s_direct_tls_interfaces = ${iface}`,
    ports.s2s !== undefined ? `s2s_ports = { ${ports.s2s} }` : 's2s_ports = { }',
    `s2s_interfaces = ${iface}`,
    ports.component !== undefined ? `component_ports = { ${ports.component} }` : 'component_ports = { }',
    `component_interfaces = ${iface}`,
    's2s_direct_tls_ports = { }',
    'legacy_ssl_ports = { }',
    // mod_http is auto-loaded by some modules; keep it off public ports.
    ports.http !== undefined ? `http_ports = { ${ports.http} }` : 'http_ports = { }',
    ports.http !== undefined ? 'consider_websocket_secure = true' : '',
    'https_ports = { }',
    `http_interfaces = ${iface}`,
    `https_interfaces = ${iface}`,
    cert !== undefined ? `ssl = { key = ${luaString(cert.keyPath)}; certificate = ${luaString(cert.certPath)}; }` : '',
    `c2s_require_encryption = ${opts.requireEncryption ?? true}`,
    's2s_require_encryption = false',
    's2s_secure_auth = false',
    `allow_unencrypted_plain_auth = ${opts.allowUnencryptedPlain ?? false}`,
    `secure_interfaces = ${luaList(secure)}`,
    'authentication = "internal_plain"',
    'storage = "internal"',
    'allow_registration = true',
    'min_seconds_between_registrations = 0',
    `registration_allowlist = ${luaList(['127.0.0.1', '::1'])}`,
    'muc_room_locking = false',
    `log = { { levels = { min = ${luaString(opts.logLevel ?? 'info')} }, to = "file", filename = ${luaString(path.join(dir, 'prosody.log'))} } }`,
    opts.extraConfig ?? '',
  ];
  for (const h of hosts) {
    lines.push(`VirtualHost ${luaString(h)}`);
    if (opts.hostConfig !== undefined) lines.push(opts.hostConfig);
    if (opts.muc ?? true) {
      lines.push(`Component ${luaString(`conference.${h}`)} "muc"`, '  restrict_room_creation = false');
    }
  }
  for (const c of opts.components ?? []) {
    lines.push(`Component ${luaString(c.jid)}`, `  component_secret = ${luaString(c.secret)}`);
  }
  return lines.filter((l) => l !== '').join('\n') + '\n';
}

type StartOutcome = { kind: 'ready' } | { kind: 'port-taken' } | { kind: 'failed'; why: string };

async function waitReady(child: ChildProcess, port: number, logPath: string, timeoutMs: number): Promise<StartOutcome> {
  const deadline = Date.now() + timeoutMs;
  const activated = `Activated service 'c2s' on [127.0.0.1]:${port}`;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      return { kind: 'failed', why: `prosody exited early (code ${child.exitCode}, signal ${child.signalCode})` };
    }
    const log = await readFile(logPath, 'utf8').catch(() => '');
    // Prosody keeps running when it cannot bind, so a connect alone could
    // reach some other process that took the port after freePort() closed it.
    if (log.includes(`Failed to open server port ${port}`)) return { kind: 'port-taken' };
    if (log.includes(activated) && (await canConnect(port))) return { kind: 'ready' };
    await delay(50);
  }
  return { kind: 'failed', why: `c2s port ${port} not ready within ${timeoutMs} ms` };
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

async function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM');
    if (!(await waitExit(child, 5000))) {
      child.kill('SIGKILL');
      await waitExit(child, 5000);
    }
  }
  live.delete(child);
}

async function tail(file: string, lines: number): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').slice(-lines).join('\n');
}

/** Start a private Prosody on a free 127.0.0.1 port. Call `stop()` when done (e.g. in `after`). */
export async function startProsody(opts: ProsodyOptions = {}): Promise<ProsodyInstance> {
  if (!haveProsody()) throw new Error(INSTALL_HINT);
  const prosody = prosodyPath as string;
  const hosts = opts.hosts ?? ['localhost'];
  if (hosts.length === 0) throw new Error('startProsody: hosts must not be empty');
  if (opts.directTls === true && opts.tls !== true) throw new Error('startProsody: directTls needs tls: true');
  const timeoutMs = opts.startTimeoutMs ?? 15_000;

  const dir = await mkdtemp(path.join(os.tmpdir(), 'xmpp-guard-prosody-'));
  const configPath = path.join(dir, 'prosody.cfg.lua');
  const logPath = path.join(dir, 'prosody.log');
  const stdoutPath = path.join(dir, 'stdout.log');
  await mkdir(path.join(dir, 'data'), { recursive: true });
  await mkdir(path.join(dir, 'certs'), { recursive: true });
  const cert = opts.tls === true ? await makeCert(dir, hosts) : undefined;

  let lastError = '';
  // A port can be taken between freePort() and Prosody's bind: retry with new ports.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const ports: Ports = {
      c2s: opts.port ?? (await freePort()),
      s2s: opts.s2s === true ? await freePort() : undefined,
      directTls: opts.directTls === true ? await freePort() : undefined,
      component: (opts.components?.length ?? 0) > 0 ? await freePort() : undefined,
      http: opts.websocket === true ? await freePort() : undefined,
    };
    await writeFile(configPath, renderConfig({ opts, dir, hosts, ports, cert }));
    await rm(logPath, { force: true });
    const out = openSync(stdoutPath, 'a');
    let child: ChildProcess;
    try {
      child = spawn(prosody, ['--config', configPath, '-F'], {
        cwd: dir,
        detached: false,
        stdio: ['ignore', out, out],
      });
    } finally {
      closeSync(out);
    }
    live.add(child);
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    const outcome = await Promise.race([
      waitReady(child, ports.c2s, logPath, timeoutMs),
      spawnError.then((e): StartOutcome => ({ kind: 'failed', why: `spawn failed: ${e.message}` })),
    ]);
    if (outcome.kind === 'ready' && child.pid !== undefined) {
      return makeInstance({ child, pid: child.pid, dir, configPath, logPath, hosts, ports, cert });
    }
    await terminate(child);
    if (outcome.kind === 'port-taken') {
      lastError = `port ${ports.c2s} was taken before Prosody could bind it`;
      continue;
    }
    lastError = outcome.kind === 'failed' ? outcome.why : 'no pid';
    break;
  }
  const details = `${await tail(stdoutPath, 15)}\n--- prosody.log ---\n${await tail(logPath, 25)}`;
  if (process.env.PROSODY_KEEP_DIR !== '1') await rm(dir, { recursive: true, force: true });
  throw new Error(`startProsody: ${lastError} (config ${configPath})\n${details}`);
}

function makeInstance(o: {
  child: ChildProcess;
  pid: number;
  dir: string;
  configPath: string;
  logPath: string;
  hosts: readonly string[];
  ports: Ports;
  cert: { certPath: string; keyPath: string } | undefined;
}): ProsodyInstance {
  const { child, dir, configPath, logPath, hosts, ports } = o;
  const domain = hosts[0] as string;
  let stopping: Promise<void> | undefined;

  const prosodyctl = (args: string[], timeoutMs = 15_000): Promise<RunResult> =>
    run('prosodyctl', ['--config', configPath, ...args], timeoutMs);

  return {
    host: '127.0.0.1',
    port: ports.c2s,
    s2sPort: ports.s2s,
    directTlsPort: ports.directTls,
    componentPort: ports.component,
    httpPort: ports.http,
    dir,
    configPath,
    logPath,
    certPath: o.cert?.certPath,
    keyPath: o.cert?.keyPath,
    domain,
    hosts,
    pid: o.pid,

    async createUser(username, password, host = domain) {
      // internal_plain keeps the clear password in data/<host>/accounts/<user>.dat,
      // a Lua chunk in the same shape prosodyctl writes; read on every login.
      if (!SIMPLE_LOCALPART.test(username)) {
        throw new Error(`createUser: use a lower-case a-z0-9._- username for the fast path, not ${JSON.stringify(username)}`);
      }
      if (!hosts.includes(host)) throw new Error(`createUser: ${host} is not one of this Prosody's hosts`);
      const accounts = path.join(dir, 'data', datamanagerEncode(host), 'accounts');
      await mkdir(accounts, { recursive: true });
      const file = path.join(accounts, `${datamanagerEncode(username)}.dat`);
      await writeFile(file, `return {\n\t["password"] = ${luaString(password)};\n};\n`);
    },

    async registerWithProsodyctl(username, password, host = domain) {
      const res = await prosodyctl(['register', username, host, password]);
      if (res.code !== 0) {
        throw new Error(`prosodyctl register ${username}@${host} failed (exit ${res.code}): ${res.stdout}${res.stderr}`);
      }
    },

    prosodyctl,

    logText() {
      return readFile(logPath, 'utf8').catch(() => '');
    },

    stop() {
      stopping ??= (async () => {
        await terminate(child);
        if (process.env.PROSODY_KEEP_DIR !== '1') await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}
