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
  const room = { name: null, nick: null, local: false, lan: false, server: null };
  const PIN = 'sha256/' + 'q'.repeat(43);
  // An invite link opened from outside, not yet taken by the window.
  let pendingLink = null;

  // Reads a link roughly as Rust does (enough for the tests): v=1, servers, pins, room.
  function readInvite(link) {
    const m = /^cryptocat:\/\/join\?(.*)$/i.exec(link.trim());
    if (!m) throw { code: 'invalid_invite', message: 'this is not a Cryptocat invite link: it must start with cryptocat://join?', seen_key: null };
    const params = m[1].split('&').map((p) => p.split('=')).map(([k, v]) => [k, decodeURIComponent(v ?? '')]);
    const get = (k) => params.filter(([n]) => n === k).map(([, v]) => v);
    if (get('v')[0] !== '1') throw { code: 'invalid_invite', message: `the invite link is version ${get('v')[0]}, but this app reads version 1 only: update Cryptocat`, seen_key: null };
    const roomName = get('room')[0];
    if (!roomName) throw { code: 'invalid_invite', message: 'the invite link has no room', seen_key: null };
    const servers = get('server');
    const hosts = [...new Set(servers.map((u) => u.replace(/^[a-z]+:\/\//, '').replace(/[:/].*$/, '')))];
    return {
      link: link.trim(),
      room: roomName.toLowerCase(),
      hosts,
      pins: get('pin'),
      this_computer: hosts.every((h) => h === '127.0.0.1' || h === 'localhost'),
    };
  }

  const linkOf = (server, extra = '') => `cryptocat://join?v=1&server=${server}${extra}&room=${room.name}`;
  const inviteLink = (way, link, hosts, pinned) => ({
    way,
    link,
    join_command: `cryptocat join "${link}" --nick NICK`,
    hosts,
    pinned,
  });
  // The app keeps its settings across a reload of the window (they live in Rust), and the
  // language across restarts too: here, in the page's storage.
  let settings = JSON.parse(localStorage.getItem('stub-settings') ?? 'null') ?? {
    show_content: false,
    mute: false,
    keep_in_tray: true,
    remember_identity: false,
    language: 'system',
  };
  // As src-tauri does before the page's scripts run: the chosen language.
  window.__CRYPTOCAT_LANGUAGE__ = settings.language;
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
        // xmpp://fail.invalid/?code=CODE: that error (registration_refused with the server's reason).
        const failing = req.server.kind === 'url' && /[?&]code=([a-z_]+)/.exec(req.server.url);
        if (failing)
          throw {
            code: failing[1],
            message: 'an English sentence the UI does not show',
            seen_key: failing[1] === 'certificate_refused' ? 'sha256/' + 'c'.repeat(43) : null,
            detail: failing[1] === 'registration_refused' ? 'resource-constraint' : null,
          };
        if (req.server.kind === 'url' && req.server.url.includes('unreachable'))
          throw { code: 'connection_refused', message: 'could not connect to the server', seen_key: null };
        if (req.server.kind === 'invite') {
          const view = readInvite(req.server.link);
          if (view.room !== req.room.toLowerCase())
            throw { code: 'invalid_invite', message: 'the room to join is not the invite link\'s room', seen_key: null };
          if (view.hosts.includes('wrong.example.org'))
            throw { code: 'wrong_server', message: 'could not connect to the server', seen_key: 'sha256/' + 'z'.repeat(43) };
        }
        room.name = req.room.toLowerCase();
        room.nick = req.nick.trim();
        room.local = req.server.kind === 'this_computer';
        room.lan = room.local && req.server.local_network === true;
        room.server = req.server;
        const fingerprint = 'fedcba9876543210fedcba9876543210fedcba98';
        later(() => {
          roomEvent({ type: 'joined', room: room.name, nick: room.nick, fingerprint });
          roomEvent({ type: 'connection', state: 'connected' });
          roomEvent({ type: 'member_joined', ...bob });
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
      case 'invites':
        if (args.room !== room.name) throw { code: 'not_joined', message: 'not in that room', seen_key: null };
        if (room.local) {
          const links = [
            inviteLink('this_computer', linkOf('xmpp://127.0.0.1:5222', `&server=ws://localhost:5280/xmpp-websocket&domain=localhost&pin=${PIN}`), ['127.0.0.1', 'localhost'], true),
          ];
          if (room.lan)
            links.push(inviteLink('local_network', linkOf('xmpp://192.168.1.20:5222', `&domain=localhost&pin=${PIN}`), ['192.168.1.20'], true));
          return { links, built_in: true, local_network: room.lan };
        }
        if (room.server.kind === 'invite') {
          const view = readInvite(room.server.link);
          return { links: [inviteLink('server_in_use', view.link, view.hosts, view.pins.length > 0)], built_in: false, local_network: false };
        }
        return {
          links: [inviteLink('server_in_use', linkOf(room.server.url), [room.server.url.replace(/^[a-z]+:\/\//, '').replace(/[:/].*$/, '')], false)],
          built_in: false,
          local_network: false,
        };
      case 'read_invite':
        return readInvite(args.link);
      case 'take_opened_link': {
        const link = pendingLink;
        pendingLink = null;
        if (link === null) return null;
        try {
          return { kind: 'invite', invite: readInvite(link) };
        } catch (error) {
          return { kind: 'invalid', error };
        }
      }
      case 'renew_relay_key':
        if (room.local && room.name !== null) throw { code: 'relay_key_in_use', message: 'rooms use the built-in server: leave them first', seen_key: null };
        window.__stub.renewed += 1;
        return null;
      case 'retry_now':
        window.__stub.retries += 1;
        later(() => roomEvent({ type: 'connection', state: 'connected' }));
        return null;
      case 'leave':
        {
          const name = args.room;
          later(() => emit('engine', { room: name, event: { type: 'left' } }));
          if (room.name === name) room.name = null;
        }
        return null;
      case 'get_settings': {
        // A keyring that is slow to answer at start (the app then waits for it).
        const slow = Number(localStorage.getItem('stub-slow-settings') ?? 0);
        if (slow) await new Promise((r) => setTimeout(r, slow));
        return settings;
      }
      case 'set_settings':
        if (args.next.remember_identity && window.__stub.noKeyring)
          throw { code: 'keyring_unavailable', message: 'no keyring is available' };
        settings = { ...args.next };
        localStorage.setItem('stub-settings', JSON.stringify(settings));
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
      case 'get_remembered':
        return JSON.parse(localStorage.getItem('stub-remembered') ?? 'null');
      case 'set_remembered':
        // Kept in the page's storage: a reload plays a restart of the app.
        if (args.remembered) localStorage.setItem('stub-remembered', JSON.stringify(args.remembered));
        else localStorage.removeItem('stub-remembered');
        return null;
      case 'set_unread_total':
        window.__stub.unreadTotal = args.total;
        return null;
      case 'quit':
        window.__stub.quits += 1;
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
    /** An engine event of another room than the last joined. */
    emitTo: (name, event) => emit('engine', { room: name, event }),
    unreadTotal: 0,
    violations,
    holdConfirmations: false,
    noKeyring: false,
    opened,
    HOSTILE,
    PIN,
    renewed: 0,
    retries: 0,
    quits: 0,
    /** A link opened from outside while the app runs (a second launch handed it over). */
    openLink(link) {
      pendingLink = link;
      emit('opened_link', null);
    },
    /** A link given at launch: taken once the window is up. */
    launchWith(link) {
      pendingLink = link;
    },
  };
})();
