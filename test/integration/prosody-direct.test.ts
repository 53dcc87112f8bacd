// Proves the integration harness itself, with no proxy in between: a private
// Prosody from test/helpers/prosody.ts in backend mode (plain TCP, loopback
// counted as secure), accounts from createUser(), real clients (@xmpp/client
// and slixmpp) logging in and exchanging messages.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { startProsody, type ProsodyInstance } from '../helpers/prosody.js';
import { connectClient, xml, type TestClient, type XmlElement } from '../helpers/xmpp-client.js';

const SLIX_ECHO = fileURLToPath(new URL('../harness/slix_echo.py', import.meta.url));
// Debian's interpreter: python3-slixmpp is installed for it, not for a pyenv python3 in PATH.
const DEBIAN_PYTHON = '/usr/bin/python3';

/**
 * Open a stream by hand and return what the server sent up to the end of its
 * <stream:features/>, or up to its closing </stream:stream> if it gave up.
 */
function rawStreamFeatures(port: number, domain: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no stream features within ${timeoutMs} ms; got: ${buf}`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      sock.write(
        `<?xml version='1.0'?><stream:stream to='${domain}' version='1.0' xml:lang='en' ` +
          `xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`,
      );
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const done = /<\/stream:features>|<\/stream:stream>/.exec(buf);
      if (done !== null) {
        clearTimeout(timer);
        sock.destroy();
        resolve(buf.slice(0, done.index + done[0].length));
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function runSlixEcho(args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(DEBIAN_PYTHON, [SLIX_ECHO, ...args], { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

const isChatFrom = (from: string, prefix: string) => (el: XmlElement): boolean =>
  el.is('message') && el.attrs.type === 'chat' && el.attrs.from === from && (el.getChildText('body') ?? '').startsWith(prefix);

describe('Prosody direct, no proxy (harness self-test)', () => {
  let prosody: ProsodyInstance;
  const clients: TestClient[] = [];

  const login = async (username: string, password: string, mechanism?: string): Promise<TestClient> => {
    const c = await connectClient({
      host: prosody.host,
      port: prosody.port,
      domain: prosody.domain,
      username,
      password,
      ...(mechanism !== undefined && { mechanism }),
    });
    clients.push(c);
    return c;
  };

  before(async () => {
    prosody = await startProsody();
    await prosody.createUser('alice', 'alice-pw');
    await prosody.createUser('bob', 'bob-pw');
    await prosody.createUser('slix1', 'slix-pw1');
    await prosody.createUser('slix2', 'slix-pw2-ü'); // non-ASCII: slixmpp sends UTF-8 (unlike @xmpp/client, see below)
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await prosody?.stop();
  });

  it('offers PLAIN and SCRAM on plain TCP and no STARTTLS (backend mode via mod_secure_interfaces)', async () => {
    const features = await rawStreamFeatures(prosody.port, prosody.domain);
    assert.match(features, /<mechanism>PLAIN<\/mechanism>/);
    assert.match(features, /<mechanism>SCRAM-SHA-1<\/mechanism>/);
    assert.doesNotMatch(features, /starttls/);
  });

  it('two @xmpp/client sessions (SCRAM-SHA-1 and PLAIN) exchange 100 chat messages, all delivered in order', async () => {
    const alice = await login('alice', 'alice-pw'); // library default on plain TCP: SCRAM-SHA-1
    const bob = await login('bob', 'bob-pw', 'PLAIN');
    assert.match(alice.jid, /^alice@localhost\/.+/);
    assert.match(bob.jid, /^bob@localhost\/.+/);

    const N = 100;
    const tag = `run-${Date.now()}`;
    for (let i = 0; i < N; i++) {
      await alice.send(xml('message', { to: bob.jid, type: 'chat', id: `m${i}` }, xml('body', {}, `${tag} ${i}`)));
    }
    const got = await bob.collect(isChatFrom(alice.jid, tag), N, 15_000);
    assert.deepEqual(
      got.map((m) => m.getChildText('body')),
      Array.from({ length: N }, (_, i) => `${tag} ${i}`),
    );

    // And back the other way, to the bare JID (needs the initial presence connectClient sent).
    await bob.send(xml('message', { to: 'alice@localhost', type: 'chat' }, xml('body', {}, `${tag} reply`)));
    const reply = await alice.waitFor(isChatFrom(bob.jid, `${tag} reply`), 5000);
    assert.equal(reply.getChildText('body'), `${tag} reply`);
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  });

  it('an account written by createUser() and one made by prosodyctl both log in', async () => {
    await prosody.registerWithProsodyctl('carol', 'carol-pw');
    // Quote, backslash and space exercise the Lua quoting of the account file.
    // ASCII only: @xmpp/client 0.14 base64-encodes SASL data with btoa(), so a
    // non-ASCII password goes out as Latin-1, not UTF-8, and Prosody answers
    // malformed-request. The slixmpp test below covers a non-ASCII password.
    await prosody.createUser('dave', 'd"ave\\pw x');
    const carol = await login('carol', 'carol-pw', 'PLAIN');
    const dave = await login('dave', 'd"ave\\pw x', 'PLAIN');
    assert.match(carol.jid, /^carol@localhost\//);
    assert.match(dave.jid, /^dave@localhost\//);
  });

  it('rejects a wrong password (not-authorized), within the login timeout', async () => {
    await assert.rejects(
      connectClient({
        host: prosody.host,
        port: prosody.port,
        domain: prosody.domain,
        username: 'alice',
        password: 'wrong',
        timeoutMs: 5000,
      }),
      /not-authorized/,
    );
  });

  it('slixmpp (python3-slixmpp) logs in with PLAIN over plain TCP and exchanges 100 messages', async () => {
    const res = await runSlixEcho(
      ['--host', prosody.host, '--port', String(prosody.port), '--domain', prosody.domain,
        '--user1', 'slix1', '--pass1', 'slix-pw1', '--user2', 'slix2', '--pass2', 'slix-pw2-ü',
        '-n', '100', '--mech', 'PLAIN', '--timeout', '15'],
      40_000,
    );
    const line = res.stdout.split('\n').find((l) => l.startsWith('RESULT '));
    assert.ok(line !== undefined, `no RESULT line from slix_echo.py (exit ${res.code})\n${res.stdout}\n${res.stderr}`);
    const result = JSON.parse(line.slice('RESULT '.length)) as { sent: number; received: number; error?: string };
    assert.equal(result.error, undefined, `slix_echo.py: ${result.error}\n${res.stderr}`);
    assert.equal(result.received, 100);
    assert.equal(res.code, 0);
  });

  it('logged no errors or warnings', async () => {
    const bad = (await prosody.logText()).split('\n').filter((l) => /\t(error|warn)\t/.test(l));
    assert.deepEqual(bad, []);
  });
});

describe('Prosody direct, secure_interfaces off', () => {
  let prosody: ProsodyInstance;
  before(async () => {
    prosody = await startProsody({ secureInterfaces: [] });
  });
  after(async () => {
    await prosody?.stop();
  });

  it('without it, backend mode has nothing to offer: no SASL on plain TCP, the stream is refused', async () => {
    const reply = await rawStreamFeatures(prosody.port, prosody.domain);
    assert.doesNotMatch(reply, /<mechanism>/);
    assert.match(reply, /<stream:error>/);
  });
});
