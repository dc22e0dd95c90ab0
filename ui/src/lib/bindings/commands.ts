// Generated from src-tauri/src/command_list.rs and each command's signature by
// `cargo test -p cryptocat-desktop command_bindings` (with UPDATE_BINDINGS=1).
// Do not edit by hand.

import type { InviteView, JoinRequest, Joined, Member, OpenedLink, Remembered, RoomInvites, Settings } from './index';

/** How a command is called: its name and its arguments by name (ipc.ts gives Tauri's
 * invoke, which rejects with a `CommandError`). */
export type Call = <T>(command: string, args: Record<string, unknown>) => Promise<T>;

/** Every command of the app, typed as Rust declares it. */
export function commands(call: Call) {
  return {
    /**
     * Joins a room; events follow as `engine` Tauri events.
     */
    join: (req: JoinRequest): Promise<Joined> => call('join', { req }),
    /**
     * Sends a group text; returns the local id that the `sent` event names.
     */
    send: (room: string, text: string): Promise<number> => call('send', { room, text }),
    /**
     * Sends a private text to a member.
     */
    sendPrivate: (room: string, nick: string, text: string): Promise<null> => call('send_private', { room, nick, text }),
    /**
     * Asks a member a secret question; the `verification` event gives the result.
     */
    ask: (room: string, nick: string, question: string | null, answer: string): Promise<null> => call('ask', { room, nick, question, answer }),
    /**
     * Answers a member's secret question.
     */
    answer: (room: string, nick: string, answer: string): Promise<null> => call('answer', { room, nick, answer }),
    /**
     * Marks a member verified, or takes the mark away.
     */
    markVerified: (room: string, nick: string, verified: boolean): Promise<null> => call('mark_verified', { room, nick, verified }),
    /**
     * The members who finished their key exchange with us.
     */
    members: (room: string): Promise<Member[]> => call('members', { room }),
    /**
     * Leaves a room (the `left` event follows).
     */
    leave: (room: string): Promise<null> => call('leave', { room }),
    /**
     * While the room's connection waits to reconnect, tries at once ("Retry now"); a
     * `connection` event follows.
     */
    retryNow: (room: string): Promise<null> => call('retry_now', { room }),
    /**
     * Our readable fingerprint in a room.
     */
    myFingerprint: (room: string): Promise<string> => call('my_fingerprint', { room }),
    /**
     * The current settings, once the start-up read of the keyring is over (or after
     * [`RESTORE_WAIT`]).
     */
    getSettings: (): Promise<Settings> => call('get_settings', {}),
    /**
     * Changes the settings. Turning "remember my identity" on makes an identity and keeps it
     * (used from the next join), with the settings; turning it off deletes what was kept.
     * Fails with a `keyring_*` code (and the setting stays off) when no keyring answers.
     */
    setSettings: (next: Settings): Promise<Settings> => call('set_settings', { next }),
    /**
     * Deletes what the keyring keeps (identity, verified fingerprints, settings) and turns
     * "remember my identity" off.
     */
    forgetRemembered: (): Promise<Settings> => call('forget_remembered', {}),
    /**
     * Opens an http(s) address in the system browser (the UI confirmed it with the person).
     */
    openLink: (url: string): Promise<null> => call('open_link', { url }),
    /**
     * The invite panel of a room: one link per way in.
     */
    invites: (room: string): Promise<RoomInvites> => call('invites', { room }),
    /**
     * Makes the built-in server a new key: the links made before stop working. Refused
     * (`relay_key_in_use`) while a room uses the built-in server.
     */
    renewRelayKey: (): Promise<null> => call('renew_relay_key', {}),
    /**
     * Reads an invite link: what the join screen shows before joining through it
     * (`invalid_invite` with what is wrong).
     */
    readInvite: (link: string): Promise<InviteView> => call('read_invite', { link }),
    /**
     * The invite link opened from outside (clicked, or given at launch) that the window has
     * not taken yet, read.
     */
    takeOpenedLink: (): Promise<OpenedLink | null> => call('take_opened_link', {}),
    /**
     * The UI calls this once the join screen is mounted and listening to events: logs
     * "join screen ready" on the [`crate::READY_TARGET`] (the desktop bench times launch to
     * this line; no user data). Returns the join request of the bench's auto-join
     * (`CRYPTOCAT_BENCH_AUTOJOIN=room,nickname`, on the built-in server), which the UI submits
     * as if typed: it goes through `join` and all its checks like any other request.
     */
    uiReady: (): Promise<JoinRequest | null> => call('ui_ready', {}),
    /**
     * Quits the app (the window confirmed it after [`CLOSE_REQUESTED_EVENT`]): every room is
     * left on the way out.
     */
    quit: (): Promise<null> => call('quit', {}),
    /**
     * Shows the unread total of every room (the window counts them) in the window's title.
     */
    setUnreadTotal: (total: number): Promise<null> => call('set_unread_total', { total }),
    /**
     * What the join screen fills in: the remembered server and nickname, if any.
     */
    getRemembered: (): Promise<Remembered | null> => call('get_remembered', {}),
    /**
     * Remembers the server and nickname for the next start (the person ticked "Remember"),
     * or forgets them (`null`).
     */
    setRemembered: (remembered: Remembered | null): Promise<null> => call('set_remembered', { remembered }),
  };
}
