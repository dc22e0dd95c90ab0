-- mod_cryptocat_key: the X-CRYPTOCAT-KEY SASL mechanism for Prosody 0.12
-- (specification: docs/key-challenge.md in the Cryptocat repository).
--
-- A client proves it holds an ed25519 key and is logged in as the account whose localpart
-- is derived from that key; no registration is needed. Prosody 0.12's Lua has no Ed25519,
-- so the signature is checked by the `cryptocat-keycheck` program (Rust, shipped with
-- cryptocat-server); all cryptography stays there. This module only draws the nonce,
-- builds the challenge, reads the TLS exporter and runs the helper.
--
-- Settings (global or per VirtualHost):
--   cryptocat_keycheck = "/usr/local/bin/cryptocat-keycheck"  -- path of the helper
--
-- Load it on the VirtualHost (modules_enabled = { ..., "cryptocat_key" }).
-- Registration (mod_register) of key-shaped names (40 characters of a-z2-7) is refused,
-- so no password account can take a key's JID.

local sasl = require "util.sasl";
local random = require "util.random";
local hex = require "util.hex";
local usermanager = require "core.usermanager";

local MECHANISM = "X-CRYPTOCAT-KEY";
local VERSION = 1;
local helper = module:get_option_string("cryptocat_keycheck", "cryptocat-keycheck");
local host = module.host;

if not host:match("^[%w%.%-]+$") or #host > 1023 then
	module:log("error", "X-CRYPTOCAT-KEY needs a plain ASCII host name");
	return;
end

-- RFC 9266 tls-exporter of the session's own TLS connection (TCP c2s), nil without one.
local function exporter_of(session)
	if not (session and session.encrypted and session.conn and session.conn.socket) then
		return nil;
	end
	if session.bosh_version then return nil; end -- BOSH: several HTTP connections
	local sock = session.conn:socket();
	if not (sock and sock.exportkeyingmaterial) then return nil; end
	local ok, material = pcall(sock.exportkeyingmaterial, sock, "EXPORTER-Channel-Binding", 32);
	if ok and type(material) == "string" and #material == 32 then
		return material;
	end
	return nil;
end

local function shell_quote(s)
	return "'" .. s:gsub("'", "") .. "'";
end

local function mechanism(self, message)
	local state = self.cryptocat_state;
	if state == nil then
		-- client-first: version 1 and a 32-byte key.
		if type(message) ~= "string" or #message ~= 33 or message:byte(1) ~= VERSION then
			return "failure", "malformed-request";
		end
		local session = self.profile.cryptocat_session;
		local exporter = exporter_of(session);
		local nonce = random.bytes(32);
		self.cryptocat_state = { first = message, nonce = nonce, exporter = exporter };
		return "challenge", string.char(VERSION) .. nonce .. string.char(exporter and 1 or 0)
			.. string.char(math.floor(#host / 256), #host % 256) .. host;
	end
	-- client-final: used once, whatever the outcome.
	self.cryptocat_state = false;
	if not state or type(message) ~= "string" or #message ~= 64 then
		return "failure", "malformed-request";
	end
	local cmd = table.concat({
		shell_quote(helper), "verify", shell_quote(host), hex.to(state.nonce),
		state.exporter and hex.to(state.exporter) or "-",
		hex.to(state.first), hex.to(message),
	}, " ");
	local proc = io.popen(cmd, "r");
	if not proc then
		module:log("error", "cannot run %s", helper);
		return "failure", "temporary-auth-failure";
	end
	local out = proc:read("*l") or "";
	proc:close();
	local localpart = out:match("^ok ([a-z2-7]+)$");
	if not localpart or #localpart ~= 40 then
		if not out:match("^refused") then
			module:log("error", "%s gave no answer; is cryptocat_keycheck set?", helper);
			return "failure", "temporary-auth-failure";
		end
		return "failure", "not-authorized";
	end
	self.username = localpart;
	return "success", localpart;
end

sasl.registerMechanism(MECHANISM, { "cryptocat_key" }, mechanism);

-- Puts the mechanism on a session's SASL handler (and its clean clones, which share the
-- profile and its mechanism table).
local function offer(handler, session)
	handler.profile.cryptocat_key = true;
	handler.profile.cryptocat_session = session;
	handler.mechs[MECHANISM] = true;
end

-- After mod_saslauth built the features: add ours to the handler and to <mechanisms/>.
module:hook("stream-features", function(event)
	local origin, features = event.origin, event.features;
	if origin.username or not origin.sasl_handler then return; end
	local mechs = features:get_child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl");
	if not mechs then return; end
	offer(origin.sasl_handler, origin);
	mechs:tag("mechanism"):text(MECHANISM):up();
end, -10);

-- Before mod_saslauth handles <auth mechanism="X-CRYPTOCAT-KEY">: a handler that knows it.
module:hook("stanza/urn:ietf:params:xml:ns:xmpp-sasl:auth", function(event)
	local session, stanza = event.origin, event.stanza;
	if session.type ~= "c2s_unauthed" or stanza.attr.mechanism ~= MECHANISM then return; end
	if not session.sasl_handler or session.sasl_handler.selected then
		session.sasl_handler = usermanager.get_sasl_handler(module.host, session);
	end
	offer(session.sasl_handler, session);
end, 10);

-- No password account may take a key-derived name.
module:hook("user-registering", function(event)
	local name = event.username or "";
	if #name == 40 and name:match("^[a-z2-7]+$") then
		event.allowed = false;
		event.reason = "that name is reserved for key-bound accounts";
	end
end);
