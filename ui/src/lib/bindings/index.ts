// Generated from src-tauri/src/dto.rs by `cargo test -p cryptocat-desktop export_bindings`
// (with UPDATE_BINDINGS=1). Do not edit by hand.

/** The Tauri event carrying `RoomEvent`s. */
export const ENGINE_EVENT = "engine";
/** The Tauri event carrying an `OpenChat` (a notification was clicked). */
export const OPEN_CHAT_EVENT = "open_chat";

export type ServerChoice = { "kind": "this_computer", 
/**
 * Let people on the local network join too (off unless the person opts in).
 */
local_network: boolean, } | { "kind": "url", 
/**
 * The address as typed.
 */
url: string, };

export type JoinRequest = { 
/**
 * Room name as typed.
 */
room: string, 
/**
 * Nickname as typed.
 */
nick: string, 
/**
 * Where.
 */
server: ServerChoice, };

export type Joined = { 
/**
 * The room name (lower-cased): the key for every other command.
 */
room: string, 
/**
 * Our nickname.
 */
nick: string, 
/**
 * Our fingerprint, readable form.
 */
fingerprint: string, };

export type CommandError = { 
/**
 * Stable code (`invalid_room`, `invalid_nickname`, `invalid_server`, `unreachable`,
 * `join_failed`, `join_timeout`, `already_joined`, `not_joined`, `relay_failed`, and
 * the engine's codes such as `no_session`, `offline`, `empty_text`).
 */
code: string, 
/**
 * English sentence.
 */
message: string, };

export type Member = { 
/**
 * Nickname.
 */
nick: string, 
/**
 * Readable identity fingerprint.
 */
fingerprint: string, 
/**
 * Verified (marked, or the secret question succeeded).
 */
verified: boolean, 
/**
 * Our pairwise safety number with this member.
 */
safety_number: string, 
/**
 * The safety number's QR payload, to render as a QR code.
 */
safety_qr: Array<number>, 
/**
 * In the current attested epoch.
 */
in_epoch: boolean, };

export type Connection = { "state": "connecting" } | { "state": "connected" } | { "state": "reconnecting", 
/**
 * 1-based attempt.
 */
attempt: number, 
/**
 * Wait before it, in milliseconds.
 */
delay_ms: number, } | { "state": "offline" };

export type EngineEvent = { "type": "connection", 
/**
 * New state.
 */
connection: Connection, } | { "type": "joined", 
/**
 * Room name.
 */
room: string, 
/**
 * Our nickname.
 */
nick: string, 
/**
 * Our readable fingerprint.
 */
fingerprint: string, } | { "type": "member_joined", 
/**
 * The member.
 */
member: Member, } | { "type": "member_left", 
/**
 * Its nickname.
 */
nick: string, } | { "type": "rekeyed", 
/**
 * Epoch counter.
 */
epoch: number, 
/**
 * Members including us.
 */
members: number, } | { "type": "sent", 
/**
 * What `send` returned.
 */
local_id: number, 
/**
 * Message id (as in `confirmation`).
 */
id: string, } | { "type": "message", 
/**
 * Message id.
 */
id: string, 
/**
 * Sender nickname.
 */
nick: string, 
/**
 * The text.
 */
text: string, 
/**
 * One-to-one.
 */
private: boolean, } | { "type": "private_sent", 
/**
 * Recipient.
 */
to: string, } | { "type": "confirmation", 
/**
 * Message id.
 */
id: string, 
/**
 * Other members who confirmed it.
 */
confirmed: number, 
/**
 * Of how many.
 */
of: number, } | { "type": "question", 
/**
 * Who asks.
 */
nick: string, 
/**
 * The question, if any.
 */
question: string | null, } | { "type": "verification", 
/**
 * The member.
 */
nick: string, 
/**
 * Verified or not.
 */
verified: boolean, 
/**
 * Marked by hand (`false`: the secret question's result).
 */
manual: boolean, } | { "type": "warning", 
/**
 * Stable snake_case code (`key_changed`, `unconfirmed`, ...).
 */
code: string, 
/**
 * English sentence.
 */
message: string, 
/**
 * The message concerned (for `unconfirmed`).
 */
id: string | null, } | { "type": "error", 
/**
 * Stable snake_case code.
 */
code: string, 
/**
 * English sentence.
 */
message: string, } | { "type": "left" };

export type RoomEvent = { 
/**
 * The room (as `Joined::room`).
 */
room: string, 
/**
 * The event.
 */
event: EngineEvent, };

export type Settings = { 
/**
 * Notifications show the sender and the text (by default only "New message in ROOM").
 */
show_content: boolean, 
/**
 * No notifications at all.
 */
mute: boolean, 
/**
 * Closing the window keeps the app running in the tray (else closing quits).
 */
keep_in_tray: boolean, 
/**
 * Keep the identity key and the verified fingerprints in the OS keyring.
 */
remember_identity: boolean, };

export type OpenChat = { 
/**
 * The room (as `Joined::room`).
 */
room: string, 
/**
 * For a private chat, the member's nickname; `null` for the group.
 */
nick: string | null, };

export type LocalServer = { 
/**
 * The relay's XMPP domain (`localhost`).
 */
domain: string, 
/**
 * WebSocket address on this computer: `ws://localhost:PORT/xmpp-websocket` (the
 * desktop app's "Another server" takes it too).
 */
websocket_url: string, 
/**
 * BOSH address on this computer: `http://localhost:PORT/http-bind`.
 */
bosh_url: string, 
/**
 * The c2s (TCP with STARTTLS) port.
 */
c2s_port: number, 
/**
 * The command that joins the room from a terminal on this computer (`NICK` is a
 * placeholder for the other person's nickname).
 */
join_command: string, 
/**
 * Whether the relay also listens on the local network.
 */
local_network: boolean, 
/**
 * The address the local network reaches it at, when `local_network` and one was found.
 */
lan_address: string | null, 
/**
 * The command for another computer on the local network (TCP with STARTTLS, trusting
 * a copy of the relay's certificate), when `lan_address` is known.
 */
lan_join_command: string | null, 
/**
 * SHA-256 of the relay's (self-signed) certificate, colon-separated hex.
 */
certificate_fingerprint: string, 
/**
 * Where the certificate's PEM is, to copy to the other computer.
 */
certificate_path: string, };
