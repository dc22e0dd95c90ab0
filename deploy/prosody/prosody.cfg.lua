-- Prosody 0.12 configuration for Cryptocat's interop tests: loopback only, c2s with
-- STARTTLS required, BOSH and WebSocket on plain loopback HTTP, in-band registration
-- without rate limit, the MUC at conference.localhost with the plaintext filter, and the
-- X-CRYPTOCAT-KEY mechanism. The test (crates/xmpp/tests/xmpp/prosody.rs) copies this
-- file into a temporary directory and replaces the @...@ placeholders:
--   @DIR@       the temporary directory (data, certificate, log)
--   @MODULES@   this directory (mod_cryptocat_*.lua)
--   @C2S_PORT@  @HTTP_PORT@  free loopback ports
--   @KEYCHECK@  path of the cryptocat-keycheck program
-- Start: prosody --config @DIR@/prosody.cfg.lua -F

run_as_root = true
pidfile = "@DIR@/prosody.pid"
data_path = "@DIR@/data"
plugin_paths = { "@MODULES@" }

interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { @C2S_PORT@ }
c2s_direct_tls_ports = { }
http_ports = { @HTTP_PORT@ }
http_interfaces = { "127.0.0.1" }
https_ports = { }
legacy_ssl_ports = { }
https_interfaces = { "127.0.0.1" }

log = { info = "@DIR@/prosody.log" }

modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "ping"; "register";
	"bosh"; "websocket"; "cryptocat_key";
}
modules_disabled = { "s2s"; "offline"; "c2s_limits"; }

authentication = "internal_hashed"
password_hash = "SHA-256" -- SCRAM-SHA-256 (the default SHA-1 is all Prosody offers otherwise)
certificates = "@DIR@"
storage = "internal"
c2s_require_encryption = true
allow_registration = true
min_seconds_between_registrations = 0
consider_bosh_secure = true
consider_websocket_secure = true
cryptocat_keycheck = "@KEYCHECK@"

VirtualHost "localhost"
	ssl = {
		certificate = "@DIR@/localhost.crt";
		key = "@DIR@/localhost.key";
	}

Component "conference.localhost" "muc"
	modules_enabled = { "cryptocat_plaintext" }
	restrict_room_creation = false
	muc_room_locking = false -- rooms open at once, as on cryptocat-server
	muc_room_default_history_length = 0
	ssl = {
		certificate = "@DIR@/localhost.crt";
		key = "@DIR@/localhost.key";
	}
