// A stand-in for the Tauri runtime, injected before the page loads: it answers the app's
// commands the way src-tauri does (same JSON shapes, see src/lib/bindings) and emits
// engine events, so that the built UI runs in a plain browser. Tests drive it through
// window.__stub.
(() => {
  const HOSTILE = '<img src=x onerror=alert(1)><script>alert(2)</script><b>bold</b>';
  const callbacks = new Map();
  const listeners = new Map();
  let nextCallback = 1;
  let nextEventId = 1;
  let localId = 0;
  let msg = 0;
  const calls = [];
  const room = { name: null, nick: null, local: false, lan: false };
  let settings = { show_content: false, mute: false, keep_in_tray: true, remember_identity: false };
  const opened = [];

  function emit(event, payload) {
    for (const l of listeners.get(event) ?? []) {
      const cb = callbacks.get(l.handler);
      if (cb) cb({ event, id: l.id, payload });
    }
  }
  const roomEvent = (event) => emit('engine', { room: room.name, event });
  const later = (f) => setTimeout(f, 20);

  const bob = {
    nick: 'bob',
    fingerprint: '0123456789abcdef0123456789abcdef01234567',
    verified: false,
    safety_number: '12345 67890 12345 67890 12345 67890 12345 67890 12345 67890 12345 67890',
    safety_qr: Array.from({ length: 48 }, (_, i) => (i * 37) % 256),
    in_epoch: true,
  };

  async function command(cmd, args) {
    switch (cmd) {
      case 'plugin:event|listen': {
        const id = nextEventId++;
        const list = listeners.get(args.event) ?? [];
        list.push({ id, handler: args.handler });
        listeners.set(args.event, list);
        return id;
      }
      case 'plugin:event|unlisten':
        return null;
      case 'join': {
        const req = args.req;
        if (req.server.kind === 'url' && req.server.url.includes('unreachable'))
          throw { code: 'unreachable', message: 'could not connect to the server' };
        room.name = req.room.toLowerCase();
        room.nick = req.nick.trim();
        room.local = req.server.kind === 'this_computer';
        room.lan = room.local && req.server.local_network === true;
        const fingerprint = 'fedcba9876543210fedcba9876543210fedcba98';
        later(() => {
          roomEvent({ type: 'joined', room: room.name, nick: room.nick, fingerprint });
          roomEvent({ type: 'connection', connection: { state: 'connected' } });
          roomEvent({ type: 'member_joined', member: bob });
          roomEvent({ type: 'rekeyed', epoch: 1, members: 2 });
          roomEvent({ type: 'message', id: 'b1', nick: 'bob', text: HOSTILE, private: false });
        });
        return { room: room.name, nick: room.nick, fingerprint };
      }
      case 'send': {
        const id = ++localId;
        const mid = `m${++msg}`;
        later(() => {
          roomEvent({ type: 'sent', local_id: id, id: mid });
          if (!window.__stub.holdConfirmations)
            roomEvent({ type: 'confirmation', id: mid, confirmed: 1, of: 1 });
        });
        return id;
      }
      case 'send_private':
        later(() => roomEvent({ type: 'private_sent', to: args.nick }));
        later(() => roomEvent({ type: 'message', id: 'p-1', nick: args.nick, text: HOSTILE, private: true }));
        return null;
      case 'mark_verified':
        later(() => roomEvent({ type: 'verification', nick: args.nick, verified: args.verified, manual: true }));
        return null;
      case 'ask':
      case 'answer':
        later(() => roomEvent({ type: 'verification', nick: args.nick, verified: true, manual: false }));
        return null;
      case 'members':
        return [bob];
      case 'my_fingerprint':
        return 'fedcba9876543210fedcba9876543210fedcba98';
      case 'local_server':
        if (!room.local || args.room !== room.name) return null;
        return {
          domain: 'localhost',
          websocket_url: 'ws://localhost:5280/xmpp-websocket',
          bosh_url: 'http://localhost:5280/http-bind',
          c2s_port: 5222,
          join_command: `cryptocat join --server ws://localhost:5280/xmpp-websocket --room ${room.name} --nick NICK`,
          local_network: room.lan,
          lan_address: room.lan ? '192.168.1.20' : null,
          lan_join_command: room.lan
            ? `cryptocat join --server xmpp://192.168.1.20:5222 --domain localhost --ca-cert localhost.pem --room ${room.name} --nick NICK`
            : null,
          certificate_fingerprint: 'AB:CD',
          certificate_path: '/tmp/cryptocat-server-1/localhost.pem',
        };
      case 'leave':
        later(() => roomEvent({ type: 'left' }));
        return null;
      case 'get_settings':
        return settings;
      case 'set_settings':
        if (args.new.remember_identity && window.__stub.noKeyring)
          throw { code: 'keyring_unavailable', message: 'no keyring is available' };
        settings = { ...args.new };
        return settings;
      case 'forget_remembered':
        settings = { ...settings, remember_identity: false };
        return settings;
      case 'open_link':
        if (!/^https?:\/\//.test(args.url)) throw { code: 'invalid_link', message: 'only http and https' };
        opened.push(args.url);
        return null;
      case 'ui_ready':
        return null;
      default:
        throw { code: 'unknown_command', message: cmd };
    }
  }

  window.__TAURI_INTERNALS__ = {
    metadata: { currentWindow: { label: 'main' }, currentWebview: { windowLabel: 'main', label: 'main' } },
    transformCallback(cb, once) {
      const id = nextCallback++;
      callbacks.set(id, (x) => {
        if (once) callbacks.delete(id);
        cb(x);
      });
      return id;
    },
    unregisterCallback(id) {
      callbacks.delete(id);
    },
    convertFileSrc: (p) => p,
    invoke(cmd, args) {
      calls.push({ cmd, args });
      return command(cmd, args ?? {});
    },
  };
  window.__TAURI_EVENT_PLUGIN_INTERNALS__ = {
    unregisterListener(event, id) {
      listeners.set(event, (listeners.get(event) ?? []).filter((l) => l.id !== id));
    },
  };
  const violations = [];
  document.addEventListener('securitypolicyviolation', (e) =>
    violations.push(`${e.violatedDirective} ${e.blockedURI}`),
  );
  window.__stub = {
    calls,
    emit: roomEvent,
    emitRaw: emit,
    violations,
    holdConfirmations: false,
    noKeyring: false,
    opened,
    HOSTILE,
  };
})();
