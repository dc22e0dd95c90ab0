// strophe.js 5 against cryptocat-server: SCRAM-SHA-256 login, join a room, send a
// plaintext <body> and expect a policy-violation error. Prints "OK ..." and exits 0 on
// success.
//
// Over BOSH it first registers in-band (strophejs-plugin-register, which works over BOSH
// only); over WebSocket it logs in to an account given on the command line.
//
// usage: node strophe.mjs http://127.0.0.1:PORT/http-bind ROOM NICK
//        node strophe.mjs ws://127.0.0.1:PORT/xmpp-websocket ROOM NICK USER PASSWORD
import xhr2 from 'xhr2';
import { DOMParser } from '@xmldom/xmldom';

// Node has no XMLHttpRequest: xhr2 provides one, without responseXML, which strophe.js
// needs for BOSH responses.
Object.defineProperty(xhr2.prototype, 'responseXML', {
  get() {
    if (!this.responseText) return null;
    return new DOMParser().parseFromString(this.responseText, 'text/xml');
  },
});
globalThis.XMLHttpRequest = xhr2;
const strophe = await import('strophe.js');
const { Strophe, $iq, $msg, $pres } = strophe;
globalThis.Strophe = Strophe;
globalThis.$iq = $iq;
globalThis.$msg = $msg;
globalThis.$pres = $pres;
await import('strophejs-plugin-register/strophe.register.js');

const [url, room, nick, givenUser, givenPassword] = process.argv.slice(2);
const domain = 'localhost';
const roomJid = `${room}@conference.${domain}`;
const user = givenUser || `js${Math.random().toString(16).slice(2, 10)}`;
const password = givenPassword || `pw-${user}`;

function fail(why) {
  console.log(`FAIL ${why}`);
  process.exit(1);
}
setTimeout(() => fail('timeout'), 20000);

const conn = new Strophe.Connection(url);
// strophejs-plugin-register sends its iqs without an id: give every iq one.
const send = conn.send.bind(conn);
conn.send = (stanza) => {
  const el = typeof stanza.tree === 'function' ? stanza.tree() : stanza;
  if (process.env.JSDEBUG) console.log('send', el && el.tagName);
  if (el && el.tagName === 'iq' && !el.getAttribute('id')) {
    el.setAttribute('id', conn.getUniqueId('iq'));
  }
  send(el);
};

function joined() {
  conn.addHandler((m) => {
    const err = m.getElementsByTagName('policy-violation');
    if (m.getAttribute('type') === 'error' && err.length === 1) {
      console.log('OK policy-violation');
      conn.disconnect();
      setTimeout(() => process.exit(0), 300);
      return false;
    }
    fail(`unexpected message ${Strophe.serialize(m)}`);
    return false;
  }, null, 'message', 'error');
  conn.send($msg({ to: roomJid, type: 'groupchat', id: 'plain1' }).c('body').t('hello in the clear'));
}

function onStatus(status, condition) {
  switch (status) {
    case Strophe.Status.REGISTER:
      conn.register.fields.username = user;
      conn.register.fields.password = password;
      conn.register.submit();
      break;
    case Strophe.Status.REGISTERED:
      console.log('registered');
      conn.authenticate();
      break;
    case Strophe.Status.CONNECTED:
      console.log('connected');
      conn.addHandler((p) => {
        const codes = Array.from(p.getElementsByTagName('status')).map((s) => s.getAttribute('code'));
        if (p.getAttribute('from') === `${roomJid}/${nick}` && codes.includes('110')) {
          console.log('joined');
          joined();
          return false;
        }
        return true;
      }, null, 'presence');
      conn.send($pres({ to: `${roomJid}/${nick}` }).c('x', { xmlns: 'http://jabber.org/protocol/muc' }));
      break;
    case Strophe.Status.REGIFAIL:
    case Strophe.Status.CONFLICT:
    case Strophe.Status.NOTACCEPTABLE:
    case Strophe.Status.CONNFAIL:
    case Strophe.Status.AUTHFAIL:
    case Strophe.Status.SBMTFAIL:
      fail(`status ${status} ${condition || ''}`);
      break;
    default:
      break;
  }
}

if (givenUser) {
  conn.connect(`${user}@${domain}`, password, onStatus);
} else {
  conn.register.connect(domain, onStatus, 5, 1);
}
