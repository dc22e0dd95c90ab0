// Every string the UI shows, by name: each one is looked up in the current language's
// catalogue (src/locales/*.json, through i18n.ts) when it is read.
import { t, tEnglish } from './i18n';

export const s = {
  get appName() {
    return t('appName');
  },
  join: {
    get title() {
      return t('join.title');
    },
    get room() {
      return t('join.room');
    },
    get roomHint() {
      return t('join.roomHint');
    },
    get nick() {
      return t('join.nick');
    },
    get nickHint() {
      return t('join.nickHint');
    },
    get remember() {
      return t('join.remember');
    },
    get rememberHint() {
      return t('join.rememberHint');
    },
    get server() {
      return t('join.server');
    },
    get thisComputer() {
      return t('join.thisComputer');
    },
    get otherServer() {
      return t('join.otherServer');
    },
    get serverUrl() {
      return t('join.serverUrl');
    },
    get serverUrlHint() {
      return t('join.serverUrlHint');
    },
    get pin() {
      return t('join.pin');
    },
    get pinHint() {
      return t('join.pinHint');
    },
    get localNetwork() {
      return t('join.localNetwork');
    },
    get localNetworkHint() {
      return t('join.localNetworkHint');
    },
    get submit() {
      return t('join.submit');
    },
    get joining() {
      return t('join.joining');
    },
    get seenKey() {
      return t('join.seenKey');
    },
    get serverSaid() {
      return t('join.serverSaid');
    },
  },
  invite: {
    get title() {
      return t('invite.title');
    },
    get room() {
      return t('invite.room');
    },
    get server() {
      return t('invite.server');
    },
    get thisComputer() {
      return t('invite.thisComputer');
    },
    get keyMark() {
      return t('invite.keyMark');
    },
    get keyMarkHint() {
      return t('invite.keyMarkHint');
    },
    get pins() {
      return t('invite.pins');
    },
    get noPin() {
      return t('invite.noPin');
    },
    get other() {
      return t('invite.other');
    },
  },
  errors: {
    get invalid_room() {
      return t('errors.invalid_room');
    },
    get invalid_nickname() {
      return t('errors.invalid_nickname');
    },
    get invalid_server() {
      return t('errors.invalid_server');
    },
    get invalid_pin() {
      return t('errors.invalid_pin');
    },
    get invalid_invite() {
      return t('errors.invalid_invite');
    },
    get missing_server() {
      return t('errors.missing_server');
    },
    get unreachable() {
      return t('errors.unreachable');
    },
    get wrong_server() {
      return t('errors.wrong_server');
    },
    get certificate_refused() {
      return t('errors.certificate_refused');
    },
    get name_not_found() {
      return t('errors.name_not_found');
    },
    get connection_refused() {
      return t('errors.connection_refused');
    },
    get timed_out() {
      return t('errors.timed_out');
    },
    get unknown_domain() {
      return t('errors.unknown_domain');
    },
    get registration_refused() {
      return t('errors.registration_refused');
    },
    get login_refused() {
      return t('errors.login_refused');
    },
    get tls_config() {
      return t('errors.tls_config');
    },
    get invalid_domain() {
      return t('errors.invalid_domain');
    },
    get join_failed() {
      return t('errors.join_failed');
    },
    get join_timeout() {
      return t('errors.join_timeout');
    },
    get room_setup() {
      return t('errors.room_setup');
    },
    get relay_failed() {
      return t('errors.relay_failed');
    },
    get relay_in_use() {
      return t('errors.relay_in_use');
    },
    get relay_key_in_use() {
      return t('errors.relay_key_in_use');
    },
    get relay_key_failed() {
      return t('errors.relay_key_failed');
    },
    get already_joined() {
      return t('errors.already_joined');
    },
    get not_joined() {
      return t('errors.not_joined');
    },
    get no_session() {
      return t('errors.no_session');
    },
    get offline() {
      return t('errors.offline');
    },
    get empty_text() {
      return t('errors.empty_text');
    },
    get text_too_long() {
      return t('errors.text_too_long');
    },
    get unknown_nickname() {
      return t('errors.unknown_nickname');
    },
    get ambiguous_nickname() {
      return t('errors.ambiguous_nickname');
    },
    get closed() {
      return t('errors.closed');
    },
    get verification() {
      return t('errors.verification');
    },
    get room() {
      return t('errors.room');
    },
    get keyring_unavailable() {
      return t('errors.keyring_unavailable');
    },
    get keyring_failed() {
      return t('errors.keyring_failed');
    },
    get keyring_corrupt() {
      return t('errors.keyring_corrupt');
    },
    get invalid_link() {
      return t('errors.invalid_link');
    },
    get open_failed() {
      return t('errors.open_failed');
    },
    get ipc() {
      return t('errors.ipc');
    },
    get prefs_failed() {
      return t('errors.prefs_failed');
    },
    get rejoin_failed() {
      return t('errors.rejoin_failed');
    },
    get generic() {
      return t('errors.generic');
    },
  } as Record<string, string>,
  room: {
    get members() {
      return t('room.members');
    },
    get you() {
      return t('room.you');
    },
    get verified() {
      return t('room.verified');
    },
    get unverified() {
      return t('room.unverified');
    },
    get notInEpoch() {
      return t('room.notInEpoch');
    },
    get group() {
      return t('room.group');
    },
    get conversation() {
      return t('room.conversation');
    },
    privateWith: (nick: string) => t('room.privateWith', { nick }),
    openPrivate: (nick: string) => t('room.openPrivate', { nick }),
    verify: (nick: string) => t('room.verify', { nick }),
    get chatAction() {
      return t('room.chatAction');
    },
    get verifyAction() {
      return t('room.verifyAction');
    },
    closeTab: (nick: string) => t('room.closeTab', { nick }),
    get chats() {
      return t('room.chats');
    },
    get leave() {
      return t('room.leave');
    },
    leaveTitle: (room: string) => t('room.leaveTitle', { room }),
    get leaveBody() {
      return t('room.leaveBody');
    },
    get leaveConfirm() {
      return t('room.leaveConfirm');
    },
    get leaveCancel() {
      return t('room.leaveCancel');
    },
    unread: (n: number) => t('room.unread', { count: n }),
    get newMessages() {
      return t('room.newMessages');
    },
    get composer() {
      return t('room.composer');
    },
    composerPrivate: (nick: string) => t('room.composerPrivate', { nick }),
    get send() {
      return t('room.send');
    },
    get sending() {
      return t('room.sending');
    },
    confirmed: (c: number, n: number) => t('room.confirmed', { c, n }),
    get confirmBar() {
      return t('room.confirmBar');
    },
    get unconfirmed() {
      return t('room.unconfirmed');
    },
    get empty() {
      return t('room.empty');
    },
    get myFingerprint() {
      return t('room.myFingerprint');
    },
    get privateNote() {
      return t('room.privateNote');
    },
  },
  share: {
    get title() {
      return t('share.title');
    },
    get intro() {
      return t('share.intro');
    },
    way: {
      get this_computer() {
        return t('share.way.this_computer');
      },
      get local_network() {
        return t('share.way.local_network');
      },
      get server_in_use() {
        return t('share.way.server_in_use');
      },
    } as Record<string, string>,
    who: {
      get this_computer() {
        return t('share.who.this_computer');
      },
      get local_network() {
        return t('share.who.local_network');
      },
      get server_in_use() {
        return t('share.who.server_in_use');
      },
    } as Record<string, string>,
    get copy() {
      return t('share.copy');
    },
    get copied() {
      return t('share.copied');
    },
    get copyFailed() {
      return t('share.copyFailed');
    },
    qr: (way: string) => t('share.qr', { way }),
    servers: (hosts: string) => t('share.servers', { hosts }),
    get command() {
      return t('share.command');
    },
    get nickNote() {
      return t('share.nickNote');
    },
    get noLan() {
      return t('share.noLan');
    },
    get lanOff() {
      return t('share.lanOff');
    },
  },
  connection: {
    get connecting() {
      return t('connection.connecting');
    },
    get connected() {
      return t('connection.connected');
    },
    reconnectingIn: (attempt: number, seconds: number) => t('connection.reconnectingIn', { attempt, seconds }),
    reconnectingNow: (attempt: number) => t('connection.reconnectingNow', { attempt }),
    get retryNow() {
      return t('connection.retryNow');
    },
    get offline() {
      return t('connection.offline');
    },
  },
  about: {
    get open() {
      return t('about.open');
    },
    get title() {
      return t('about.title');
    },
    version: (v: string) => t('about.version', { v }),
    get what() {
      return t('about.what');
    },
    get server() {
      return t('about.server');
    },
    get license() {
      return t('about.license');
    },
    get close() {
      return t('about.close');
    },
  },
  roomList: {
    get label() {
      return t('roomList.label');
    },
    get joinAnother() {
      return t('roomList.joinAnother');
    },
    get cancel() {
      return t('roomList.cancel');
    },
    title: (n: number) => t('roomList.title', { n }),
  },
  quit: {
    get title() {
      return t('quit.title');
    },
    body: (rooms: string) => t('quit.body', { rooms }),
    get confirm() {
      return t('quit.confirm');
    },
    get cancel() {
      return t('quit.cancel');
    },
  },
  warnings: {
    get title() {
      return t('warnings.title');
    },
    get dismiss() {
      return t('warnings.dismiss');
    },
  },
  question: {
    incoming: (nick: string) => t('question.incoming', { nick }),
    get answerNow() {
      return t('question.answerNow');
    },
  },
  verify: {
    title: (nick: string) => t('verify.title', { nick }),
    get intro() {
      return t('verify.intro');
    },
    get mine() {
      return t('verify.mine');
    },
    theirs: (nick: string) => t('verify.theirs', { nick }),
    get safetyNumber() {
      return t('verify.safetyNumber');
    },
    qr: (nick: string) => t('verify.qr', { nick }),
    get mark() {
      return t('verify.mark');
    },
    get unmark() {
      return t('verify.unmark');
    },
    isVerified: (nick: string) => t('verify.isVerified', { nick }),
    isNotVerified: (nick: string) => t('verify.isNotVerified', { nick }),
    get askTitle() {
      return t('verify.askTitle');
    },
    get askHelp() {
      return t('verify.askHelp');
    },
    get question() {
      return t('verify.question');
    },
    get answer() {
      return t('verify.answer');
    },
    get ask() {
      return t('verify.ask');
    },
    get asked() {
      return t('verify.asked');
    },
    theyAsk: (nick: string) => t('verify.theyAsk', { nick }),
    get noQuestion() {
      return t('verify.noQuestion');
    },
    get yourAnswer() {
      return t('verify.yourAnswer');
    },
    get sendAnswer() {
      return t('verify.sendAnswer');
    },
    get answered() {
      return t('verify.answered');
    },
    resultOk: (nick: string) => t('verify.resultOk', { nick }),
    resultFail: (nick: string) => t('verify.resultFail', { nick }),
    get close() {
      return t('verify.close');
    },
  },
  settings: {
    get open() {
      return t('settings.open');
    },
    get title() {
      return t('settings.title');
    },
    get notifications() {
      return t('settings.notifications');
    },
    get showContent() {
      return t('settings.showContent');
    },
    get showContentHint() {
      return t('settings.showContentHint');
    },
    get mute() {
      return t('settings.mute');
    },
    get keepInTray() {
      return t('settings.keepInTray');
    },
    get identity() {
      return t('settings.identity');
    },
    get remember() {
      return t('settings.remember');
    },
    get rememberHint() {
      return t('settings.rememberHint');
    },
    get forget() {
      return t('settings.forget');
    },
    get forgotten() {
      return t('settings.forgotten');
    },
    get server() {
      return t('settings.server');
    },
    get renewKey() {
      return t('settings.renewKey');
    },
    get renewKeyHint() {
      return t('settings.renewKeyHint');
    },
    get renewed() {
      return t('settings.renewed');
    },
    get language() {
      return t('settings.language');
    },
    get languageSystem() {
      return t('settings.languageSystem');
    },
    get languageHint() {
      return t('settings.languageHint');
    },
    /** A language's name in that language (the same in every catalogue). */
    languageName: (code: string) => t(`languageNames.${code}`),
    get close() {
      return t('settings.close');
    },
  },
  links: {
    get title() {
      return t('links.title');
    },
    get intro() {
      return t('links.intro');
    },
    get open() {
      return t('links.open');
    },
    get cancel() {
      return t('links.cancel');
    },
    label: (url: string) => t('links.label', { url }),
  },
};

/** The sentence for an error code (falls back to a generic one). */
export function errorText(code: string): string {
  return s.errors[code] ?? s.errors.generic;
}

/** The UI's sentence for an engine warning, naming the members concerned (`who`: the member
 * first, then who reported it) and a count; the engine's own (English) sentence when the
 * catalogue has none for the code or the warning lacks a name the sentence needs. */
export function warningText(code: string, who: readonly string[], count: number | null, message: string): string {
  const key = `warnings.codes.${code}`;
  const english = tEnglish(code === 'rejoin_incomplete' ? `${key}_other` : key);
  if (english === null) return message;
  const needs = (name: string) => english.includes(`{{${name}}}`);
  if ((needs('a') && who.length < 1) || (needs('b') && who.length < 2) || (needs('list') && who.length === 0)) return message;
  if (needs('count') && count === null) return message;
  return t(key, { a: who[0] ?? '', b: who[1] ?? '', list: who.join(', '), ...(count === null ? {} : { count }) });
}

/** Codes whose sentence is followed by the error's own message (what the parser found). */
export const WITH_MESSAGE = new Set(['invalid_invite']);
