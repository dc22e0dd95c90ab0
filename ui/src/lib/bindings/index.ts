// Generated from src-tauri/src/dto.rs by `cargo test -p cryptocat-desktop export_bindings`
// (with UPDATE_BINDINGS=1). Do not edit by hand.

/** The Tauri event carrying `RoomEvent`s. */
export const ENGINE_EVENT = "engine";
/** The Tauri event carrying an `OpenChat` (a notification was clicked). */
export const OPEN_CHAT_EVENT = "open_chat";
/** The Tauri event saying an invite link was opened from outside. */
export const OPENED_LINK_EVENT = "opened_link";
/** The Tauri event asking the window to confirm quitting (closed while in a room, no tray). */
export const CLOSE_REQUESTED_EVENT = "close_requested";
/** Every `CommandError` code (each has a sentence in strings.ts). */
export const ERROR_CODES = ["invalid_room", "invalid_nickname", "invalid_server", "invalid_pin", "invalid_invite", "unreachable", "join_failed", "join_timeout", "room_setup", "already_joined", "not_joined", "relay_failed", "relay_in_use", "relay_key_in_use", "relay_key_failed", "wrong_server", "certificate_refused", "name_not_found", "connection_refused", "timed_out", "unknown_domain", "registration_refused", "login_refused", "tls_config", "invalid_domain", "closed", "unknown_nickname", "ambiguous_nickname", "offline", "empty_text", "text_too_long", "no_session", "verification", "room", "keyring_unavailable", "keyring_failed", "keyring_corrupt", "invalid_link", "open_failed", "prefs_failed"] as const;
/** Every code of a `warning` engine event (each has a sentence in the catalogues). */
export const WARNING_CODES = ["key_changed", "nickname_taken", "nickname_mismatch", "roster_split", "hidden_member", "equivocation", "transcript_inconsistent", "forged_message", "garbled", "unconfirmed", "missing_message", "member_unresponsive", "member_refused", "plaintext_dropped", "invalid_payload", "message_refused", "verification_aborted", "rejoin_incomplete", "server_guarantees"] as const;
/** Every code of an `error` engine event (each has a sentence in strings.ts). */
export const EVENT_ERROR_CODES = ["rejoin_failed", "offline"] as const;

export type ServerChoice = { "kind": "this_computer", 
/**
 * Let people on the local network join too (off unless the person opts in).
 */
local_network: boolean, } | { "kind": "url", 
/**
 * The address as typed.
 */
url: string, 
/**
 * A key pin (`sha256/…`) the server's key must match; none (or blank): the
 * system's certificate authorities decide.
 */
pin: string | null, } | { "kind": "invite", 
/**
 * The link as given.
 */
link: string, };

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
 * Stable code: one of [`ERROR_CODES`]. For a server that could not be reached, the
 * reason (`wrong_server`, `certificate_refused`, `connection_refused`, ...) rather
 * than the plain `unreachable`.
 */
code: string, 
/**
 * English sentence (for `invalid_invite`, what is wrong with the link).
 */
message: string, 
/**
 * The pin of the key a refused server showed (`wrong_server`, `certificate_refused`):
 * public, for the person to compare.
 */
seen_key: string | null, 
/**
 * The condition a refusing server gave (`registration_refused`, `login_refused`,
 * `join_failed`): an XMPP condition name such as `conflict`, at most
 * [`MAX_DETAIL`] characters.
 */
detail: string | null, };

export type Member = { 
/**
 * Nickname (from the encrypted key exchange).
 */
nick: string, 
/**
 * Identity fingerprint, readable form (40 hex digits in groups).
 */
fingerprint: string, 
/**
 * Verified by the person (marked, or the secret question succeeded), now or in an
 * earlier session.
 */
verified: boolean, 
/**
 * Our pairwise safety number with this member (60 digits in groups of 5).
 */
safety_number: string, 
/**
 * The safety number's QR payload.
 */
safety_qr: Array<number>, 
/**
 * In the current attested epoch (can read what we send now).
 */
in_epoch: boolean, };

export type Connection = { "state": "connecting" } | { "state": "connected" } | { "state": "reconnecting", 
/**
 * 1-based attempt.
 */
attempt: number, 
/**
 * Wait before it (`delay_ms` in JSON).
 */
delay_ms: number, } | { "state": "offline" };

export type WarningCode = "key_changed" | "nickname_taken" | "nickname_mismatch" | "roster_split" | "hidden_member" | "equivocation" | "transcript_inconsistent" | "forged_message" | "garbled" | "unconfirmed" | "missing_message" | "member_unresponsive" | "member_refused" | "plaintext_dropped" | "invalid_payload" | "message_refused" | "verification_aborted" | "rejoin_incomplete" | "server_guarantees";

export type EngineEvent = { "type": "connection" } & Connection | { "type": "joined", 
/**
 * Room name.
 */
room: string, 
/**
 * Our nickname.
 */
nick: string, 
/**
 * Our fingerprint, readable form.
 */
fingerprint: string, } | { "type": "member_joined", 
/**
 * Nickname (from the encrypted key exchange).
 */
nick: string, 
/**
 * Identity fingerprint, readable form (40 hex digits in groups).
 */
fingerprint: string, 
/**
 * Verified by the person (marked, or the secret question succeeded), now or in an
 * earlier session.
 */
verified: boolean, 
/**
 * Our pairwise safety number with this member (60 digits in groups of 5).
 */
safety_number: string, 
/**
 * The safety number's QR payload.
 */
safety_qr: Array<number>, 
/**
 * In the current attested epoch (can read what we send now).
 */
in_epoch: boolean, } | { "type": "member_left", 
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
 * What [`crate::EngineHandle::send`] returned.
 */
local_id: number, 
/**
 * The message id (as in [`EngineEvent::Confirmation`]).
 */
id: string, } | { "type": "message", 
/**
 * Message id (group: the protocol's id; private: a local counter `p-N`).
 */
id: string, 
/**
 * Sender nickname.
 */
nick: string, 
/**
 * The text (render as text, never as markup).
 */
text: string, 
/**
 * A one-to-one message.
 */
private: boolean, } | { "type": "private_sent", 
/**
 * Recipient nickname.
 */
to: string, } | { "type": "confirmation", 
/**
 * Message id.
 */
id: string, 
/**
 * How many other members confirmed it.
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
 * What kind.
 */
code: WarningCode, 
/**
 * A readable sentence (may name members by nickname).
 */
message: string, 
/**
 * The message concerned, for [`WarningCode::Unconfirmed`] (absent from JSON
 * otherwise).
 */
id?: string, 
/**
 * The nicknames the warning is about, so that a UI can say it in its own words
 * (`message` is English): the member concerned first, then, when another member
 * reported it, that member (`nickname_mismatch`, `roster_split`,
 * `hidden_member`, `equivocation`); everyone missing for `unconfirmed` and
 * `member_unresponsive`; the nickname claimed twice for `nickname_taken`; empty
 * when no member is named.
 */
who: Array<string>, 
/**
 * How many members did not come back, for [`WarningCode::RejoinIncomplete`]
 * (absent from JSON otherwise).
 */
count?: number, } | { "type": "error", 
/**
 * A stable snake_case code.
 */
code: string, 
/**
 * A readable sentence.
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

export type Language = "system" | "en" | "fr" | "ar";

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
remember_identity: boolean, 
/**
 * The language of the UI, the tray and notifications (settings kept in a keyring
 * before there was a choice have none: "follow the system").
 */
language: Language, };

export type Remembered = { 
/**
 * The nickname last joined with.
 */
nick: string, 
/**
 * The server last joined (`this_computer` or an address; none after joining through
 * an invite link, which is not kept).
 */
server: ServerChoice | null, };

export type OpenChat = { 
/**
 * The room (as `Joined::room`).
 */
room: string, 
/**
 * For a private chat, the member's nickname; `null` for the group.
 */
nick: string | null, };

export type InviteView = { 
/**
 * The link, as this app writes it (what a join request carries).
 */
link: string, 
/**
 * The room name (lower-cased).
 */
room: string, 
/**
 * The servers' host names, in the order tried, each once.
 */
hosts: Array<string>, 
/**
 * The key pins (`sha256/…`) the server must show one of; empty: the system's
 * certificate authorities check it.
 */
pins: Array<string>, 
/**
 * Every server is on this computer (loopback).
 */
this_computer: boolean, };

export type OpenedLink = { "kind": "invite", 
/**
 * What it leads to.
 */
invite: InviteView, } | { "kind": "invalid", 
/**
 * Why.
 */
error: CommandError, };

export type Way = "this_computer" | "local_network" | "server_in_use";

export type InviteLink = { 
/**
 * Who can use it.
 */
way: Way, 
/**
 * The link.
 */
link: string, 
/**
 * `cryptocat join "LINK" --nick NICK`, for a terminal (`NICK` is a placeholder).
 */
join_command: string, 
/**
 * The servers' host names.
 */
hosts: Array<string>, 
/**
 * Carries the server's key pin.
 */
pinned: boolean, };

export type RoomInvites = { 
/**
 * The links, this computer's first.
 */
links: Array<InviteLink>, 
/**
 * The room is on the built-in server.
 */
built_in: boolean, 
/**
 * The built-in server also listens on the local network (with no `local_network`
 * link, no network address was found).
 */
local_network: boolean, };
