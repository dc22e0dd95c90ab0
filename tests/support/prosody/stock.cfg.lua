-- Stock Prosody 0.12 for the stock-server suite (tests/stock_servers.rs): Prosody's
-- defaults for everything that matters to a client (SHA-1 password hashes, so SCRAM-SHA-1
-- only; new rooms locked until their owner configures them; registration limits), with
-- in-band registration open, MUC, BOSH and WebSocket, and none of Cryptocat's modules.
-- What the test sets: loopback listeners on free ports (plain HTTP counted as secure, as
-- behind a TLS proxy), its own directory, a self-signed
-- CA:TRUE certificate as `prosodyctl cert generate` makes (clients pin its key).
-- Placeholders: @DIR@ @C2S_PORT@ @HTTP_PORT@ @HTTPS_PORT@

run_as_root = true
pidfile = "@DIR@/prosody.pid"
data_path = "@DIR@/data"
log = { info = "@DIR@/prosody.log" }

interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { @C2S_PORT@ }
c2s_direct_tls_ports = { }
s2s_ports = { }
legacy_ssl_ports = { }
http_ports = { @HTTP_PORT@ }
http_interfaces = { "127.0.0.1" }
https_ports = { @HTTPS_PORT@ }
https_interfaces = { "127.0.0.1" }
https_ssl = { certificate = "@DIR@/localhost.crt"; key = "@DIR@/localhost.key"; }

modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "ping"; "register";
	"bosh"; "websocket";
}
modules_disabled = { "s2s"; }

allow_registration = true
-- Plain HTTP (BOSH, WebSocket) is for a TLS-terminating reverse proxy in front, as
-- docs/deploy.md describes; without these Prosody offers no login on it at all.
consider_bosh_secure = true
consider_websocket_secure = true
authentication = "internal_hashed"
certificates = "@DIR@"
storage = "internal"

VirtualHost "localhost"
	ssl = { certificate = "@DIR@/localhost.crt"; key = "@DIR@/localhost.key"; }

Component "conference.localhost" "muc"
	ssl = { certificate = "@DIR@/localhost.crt"; key = "@DIR@/localhost.key"; }
