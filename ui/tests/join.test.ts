import { beforeEach, describe, expect, it, vi } from 'vitest';
import { render, screen } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';

vi.mock('../src/lib/ipc', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../src/lib/ipc')>()),
  ipc: (await import('./ipc-mock')).ipc,
}));
import { ipc } from './ipc-mock';
import Join from '../src/lib/components/Join.svelte';
import { s } from '../src/lib/strings';
import { checkNick, checkRoom, checkServerUrl, looksLikeLink } from '../src/lib/validate';
import type { InviteView } from '../src/lib/bindings';

beforeEach(() => vi.clearAllMocks());

describe('validation', () => {
  it('mirrors the engine checks', () => {
    expect(checkRoom('Lobby')).toBeNull();
    expect(checkRoom('a-b_c.d')).toBeNull();
    for (const bad of ['', 'a b', 'a@b', 'a/b', '.a', 'a.', 'a\u0000b', 'x'.repeat(65)])
      expect(checkRoom(bad), bad).toBe('invalid_room');
    expect(checkNick('  Alice ')).toBeNull();
    expect(checkNick('Zoë 🐱')).toBeNull();
    for (const bad of ['', '   ', 'a\nb', 'x'.repeat(65)]) expect(checkNick(bad), bad).toBe('invalid_nickname');
    expect(checkServerUrl('')).toBe('missing_server');
    expect(checkServerUrl('example.org')).toBe('invalid_server');
    expect(checkServerUrl('wss://example.org/xmpp-websocket')).toBeNull();
    expect(looksLikeLink('  CryptoCat://join?v=1')).toBe(true);
    expect(looksLikeLink('xmpp://example.org')).toBe(false);
  });
});

describe('Join screen', () => {
  it('shows field errors and does not call join', async () => {
    const user = userEvent.setup();
    render(Join, { onjoined: vi.fn() });
    await user.type(screen.getByLabelText(s.join.room), 'bad room');
    await user.type(screen.getByLabelText(s.join.nick), '   ');
    await user.click(screen.getByRole('button', { name: s.join.submit }));
    expect(screen.getByText(s.errors.invalid_room)).toBeInTheDocument();
    expect(screen.getByText(s.errors.invalid_nickname)).toBeInTheDocument();
    expect(screen.getByLabelText(s.join.room)).toHaveAttribute('aria-invalid', 'true');
    expect(ipc.join).not.toHaveBeenCalled();
  });

  it('asks for a server address when "another server" is picked', async () => {
    const user = userEvent.setup();
    render(Join, { onjoined: vi.fn() });
    await user.type(screen.getByLabelText(s.join.room), 'lobby');
    await user.type(screen.getByLabelText(s.join.nick), 'alice');
    await user.click(screen.getByLabelText(s.join.otherServer));
    await user.click(screen.getByRole('button', { name: s.join.submit }));
    expect(screen.getByText(s.errors.missing_server)).toBeInTheDocument();
    expect(ipc.join).not.toHaveBeenCalled();
  });

  it('joins on this computer by default and reports an unreachable server', async () => {
    const user = userEvent.setup();
    const onjoined = vi.fn();
    ipc.join.mockResolvedValueOnce({ room: 'lobby', nick: 'alice', fingerprint: 'ab' });
    render(Join, { onjoined });
    await user.type(screen.getByLabelText(s.join.room), 'Lobby');
    await user.type(screen.getByLabelText(s.join.nick), 'alice');
    await user.click(screen.getByRole('button', { name: s.join.submit }));
    expect(ipc.join).toHaveBeenCalledWith({ room: 'Lobby', nick: 'alice', server: { kind: 'this_computer', local_network: false } });
    expect(onjoined).toHaveBeenCalledWith({ room: 'lobby', nick: 'alice', fingerprint: 'ab' });

    ipc.join.mockRejectedValueOnce({ code: 'unreachable', message: 'could not connect' });
    await user.click(screen.getByLabelText(s.join.otherServer));
    await user.type(screen.getByLabelText(s.join.serverUrl), 'xmpp://example.invalid');
    await user.click(screen.getByRole('button', { name: s.join.submit }));
    expect(ipc.join).toHaveBeenLastCalledWith({
      room: 'Lobby',
      nick: 'alice',
      server: { kind: 'url', url: 'xmpp://example.invalid', pin: null },
    });
    expect(await screen.findByText(s.errors.unreachable)).toBeInTheDocument();
  });
});

const PIN = 'sha256/' + 'q'.repeat(43);
const LINK = `cryptocat://join?v=1&server=xmpp://192.168.1.20:5222&domain=localhost&pin=${PIN}&room=garden`;
const VIEW: InviteView = { link: LINK, room: 'garden', hosts: ['192.168.1.20'], pins: [PIN], this_computer: false };

describe('Join screen filled from an invite link', () => {
  it('shows the room, the server and the key mark; the person types a nickname and joins through the link', async () => {
    const user = userEvent.setup();
    const onjoined = vi.fn();
    ipc.join.mockResolvedValueOnce({ room: 'garden', nick: 'carol', fingerprint: 'ab' });
    render(Join, { onjoined, opened: { link: { kind: 'invite', invite: VIEW } } });
    expect(screen.getByRole('heading', { name: s.invite.title })).toBeInTheDocument();
    expect(screen.getByTestId('invite-room')).toHaveTextContent('#garden');
    expect(screen.getByTestId('invite-hosts')).toHaveTextContent('192.168.1.20');
    expect(screen.getByTestId('invite-key')).toHaveTextContent(s.invite.keyMark);
    expect(screen.getByText(PIN)).toBeInTheDocument();
    expect(screen.queryByLabelText(s.join.room)).toBeNull();
    expect(screen.queryByLabelText(s.join.otherServer)).toBeNull();
    await Promise.resolve();
    expect(screen.getByLabelText(s.join.nick)).toHaveFocus();
    await user.type(screen.getByLabelText(s.join.nick), 'carol');
    await user.click(screen.getByRole('button', { name: s.join.submit }));
    expect(ipc.join).toHaveBeenCalledWith({ room: 'garden', nick: 'carol', server: { kind: 'invite', link: LINK } });
    expect(onjoined).toHaveBeenCalled();
  });

  it('without a pin says the authorities check the server; "not this invite" goes back', async () => {
    const user = userEvent.setup();
    const view = { ...VIEW, pins: [], hosts: ['chat.example.org'] };
    render(Join, { onjoined: vi.fn(), opened: { link: { kind: 'invite', invite: view } } });
    expect(screen.queryByTestId('invite-key')).toBeNull();
    expect(screen.getByText(s.invite.noPin)).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: s.invite.other }));
    expect(screen.getByLabelText(s.join.room)).toBeInTheDocument();
  });

  it('says what is wrong with a link that cannot be used', () => {
    render(Join, {
      onjoined: vi.fn(),
      opened: { link: { kind: 'invalid', error: { code: 'invalid_invite', message: 'the invite link has no room', seen_key: null, detail: null } } },
    });
    expect(screen.getByRole('alert')).toHaveTextContent(`${s.errors.invalid_invite} the invite link has no room`);
    expect(screen.getByLabelText(s.join.room)).toBeInTheDocument();
  });

  it('shows the reason a server was refused, with the key it showed', async () => {
    const user = userEvent.setup();
    const seen = 'sha256/' + 'z'.repeat(43);
    ipc.join.mockRejectedValueOnce({ code: 'wrong_server', message: 'could not connect', seen_key: seen });
    render(Join, { onjoined: vi.fn(), opened: { link: { kind: 'invite', invite: VIEW } } });
    await user.type(screen.getByLabelText(s.join.nick), 'carol');
    await user.click(screen.getByRole('button', { name: s.join.submit }));
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent(s.errors.wrong_server);
    expect(screen.getByTestId('seen-key')).toHaveTextContent(seen);
    for (const code of ['certificate_refused', 'name_not_found', 'connection_refused', 'timed_out']) {
      ipc.join.mockRejectedValueOnce({ code, message: 'x', seen_key: null, detail: null });
      await user.click(screen.getByRole('button', { name: s.join.submit }));
      expect(await screen.findByText(s.errors[code])).toBeInTheDocument();
    }
  });
});

describe('Another server', () => {
  it('reads a pasted invite link and fills the screen from it', async () => {
    const user = userEvent.setup();
    ipc.readInvite.mockResolvedValueOnce(VIEW);
    render(Join, { onjoined: vi.fn() });
    await user.click(screen.getByLabelText(s.join.otherServer));
    await user.click(screen.getByLabelText(s.join.serverUrl));
    await user.paste(LINK);
    expect(ipc.readInvite).toHaveBeenCalledWith(LINK);
    expect(await screen.findByTestId('invite-room')).toHaveTextContent('#garden');
  });

  it('says what is wrong with a pasted link on submit', async () => {
    const user = userEvent.setup();
    const bad = { code: 'invalid_invite', message: 'the invite link is version 2', seen_key: null, detail: null };
    ipc.readInvite.mockRejectedValue(bad);
    render(Join, { onjoined: vi.fn() });
    await user.type(screen.getByLabelText(s.join.room), 'lobby');
    await user.type(screen.getByLabelText(s.join.nick), 'alice');
    await user.click(screen.getByLabelText(s.join.otherServer));
    await user.click(screen.getByLabelText(s.join.serverUrl));
    await user.paste('cryptocat://join?v=2');
    expect(screen.queryByLabelText(s.join.pin)).toBeNull();
    await user.click(screen.getByRole('button', { name: s.join.submit }));
    expect(await screen.findByText(`${s.errors.invalid_invite} the invite link is version 2`)).toBeInTheDocument();
    expect(ipc.join).not.toHaveBeenCalled();
    ipc.readInvite.mockReset();
  });

  it('takes a server address with a key pin', async () => {
    const user = userEvent.setup();
    ipc.join.mockRejectedValueOnce({ code: 'invalid_pin', message: 'bad pin', seen_key: null, detail: null });
    render(Join, { onjoined: vi.fn() });
    await user.type(screen.getByLabelText(s.join.room), 'lobby');
    await user.type(screen.getByLabelText(s.join.nick), 'alice');
    await user.click(screen.getByLabelText(s.join.otherServer));
    await user.type(screen.getByLabelText(s.join.serverUrl), 'xmpp://chat.example.org');
    await user.type(screen.getByLabelText(s.join.pin), ` ${PIN} `);
    await user.click(screen.getByRole('button', { name: s.join.submit }));
    expect(ipc.join).toHaveBeenCalledWith({
      room: 'lobby',
      nick: 'alice',
      server: { kind: 'url', url: 'xmpp://chat.example.org', pin: PIN },
    });
    expect(await screen.findByText(s.errors.invalid_pin)).toBeInTheDocument();
    expect(screen.getByLabelText(s.join.pin)).toHaveAttribute('aria-invalid', 'true');
  });
});

describe('remembered server and nickname', () => {
  it('fills in what was remembered, keeps it after a join when ticked, forgets when not', async () => {
    const user = userEvent.setup();
    ipc.getRemembered.mockResolvedValueOnce({ nick: 'alice', server: { kind: 'url', url: 'xmpp://example.org', pin: null } });
    ipc.join.mockResolvedValue({ room: 'lobby', nick: 'alice', fingerprint: 'ab' });
    const onjoined = vi.fn();
    const { unmount } = render(Join, { onjoined });
    expect(await screen.findByDisplayValue('alice')).toBeInTheDocument();
    expect(screen.getByLabelText(s.join.serverUrl)).toHaveValue('xmpp://example.org');
    expect(screen.getByLabelText(s.join.remember)).toBeChecked();
    expect(screen.getByLabelText(s.join.room)).toHaveValue('');
    await user.type(screen.getByLabelText(s.join.room), 'lobby');
    await user.click(screen.getByRole('button', { name: s.join.submit }));
    expect(onjoined).toHaveBeenCalled();
    expect(ipc.setRemembered).toHaveBeenCalledWith({ nick: 'alice', server: { kind: 'url', url: 'xmpp://example.org', pin: null } });
    unmount();

    ipc.getRemembered.mockResolvedValueOnce(null);
    render(Join, { onjoined });
    await user.type(screen.getByLabelText(s.join.room), 'lobby');
    await user.type(screen.getByLabelText(s.join.nick), 'alice');
    expect(screen.getByLabelText(s.join.remember)).not.toBeChecked();
    await user.click(screen.getByRole('button', { name: s.join.submit }));
    expect(ipc.setRemembered).toHaveBeenLastCalledWith(null);
  });
});
