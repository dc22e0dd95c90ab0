import { beforeEach, describe, expect, it, vi } from 'vitest';
import { render, screen } from '@testing-library/svelte';
import userEvent from '@testing-library/user-event';
import { flushSync } from 'svelte';

vi.mock('../src/lib/ipc', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../src/lib/ipc')>()),
  ipc: (await import('./ipc-mock')).ipc,
}));
import { ipc } from './ipc-mock';
import Room from '../src/lib/components/Room.svelte';
import { applyEvent } from '../src/lib/model';
import { s } from '../src/lib/strings';
import { room } from './fixtures';
import { reactive } from './reactive.svelte';

beforeEach(() => vi.clearAllMocks());

describe('verification dialog', () => {
  it('shows both fingerprints, the safety number and a QR code, and marks verified', async () => {
    const user = userEvent.setup();
    const m = reactive(room());
    ipc.markVerified.mockResolvedValue(null);
    render(Room, { model: m, onleft: vi.fn() });
    await user.click(screen.getByRole('button', { name: s.room.verify('bob') }));
    const dialog = screen.getByRole('dialog', { name: s.verify.title('bob') });
    expect(dialog).toBeInTheDocument();
    expect(screen.getByTestId('my-fingerprint')).toHaveTextContent('fedc ba98 7654');
    expect(screen.getByTestId('their-fingerprint')).toHaveTextContent('0123 4567 89ab');
    expect(screen.getByTestId('safety-number')).toHaveTextContent(m.members[0]!.safety_number);
    const qr = screen.getByRole('img', { name: s.verify.qr('bob') });
    expect(qr.querySelector('path')?.getAttribute('d')?.length ?? 0).toBeGreaterThan(100);
    expect(screen.getByText(s.verify.isNotVerified('bob'))).toBeInTheDocument();

    await user.click(screen.getByRole('button', { name: s.verify.mark }));
    expect(ipc.markVerified).toHaveBeenCalledWith('lobby', 'bob', true);
    applyEvent(m, { type: 'verification', nick: 'bob', verified: true, manual: true });
    flushSync();
    expect(screen.getByText(s.verify.isVerified('bob'))).toBeInTheDocument();
    expect(screen.getByRole('button', { name: s.verify.unmark })).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: s.verify.close }));
    expect(screen.queryByRole('dialog')).toBeNull();
    expect(screen.getByText(s.room.verified)).toBeInTheDocument();
  });

  it('asks a secret question and shows the result', async () => {
    const user = userEvent.setup();
    const m = reactive(room());
    ipc.ask.mockResolvedValue(null);
    render(Room, { model: m, onleft: vi.fn() });
    await user.click(screen.getByRole('button', { name: s.room.verify('bob') }));
    await user.type(screen.getByLabelText(s.verify.question), 'Where did we meet?');
    await user.type(screen.getByLabelText(s.verify.answer), 'Paris');
    await user.click(screen.getByRole('button', { name: s.verify.ask }));
    expect(ipc.ask).toHaveBeenCalledWith('lobby', 'bob', 'Where did we meet?', 'Paris');
    expect(screen.getByText(s.verify.asked)).toBeInTheDocument();
    applyEvent(m, { type: 'verification', nick: 'bob', verified: false, manual: false });
    flushSync();
    expect(screen.getByText(s.verify.resultFail('bob'))).toBeInTheDocument();
  });

  it('answers a question a member asks', async () => {
    const user = userEvent.setup();
    const m = reactive(room());
    ipc.answer.mockResolvedValue(null);
    render(Room, { model: m, onleft: vi.fn() });
    applyEvent(m, { type: 'question', nick: 'bob', question: 'Our cat?' });
    flushSync();
    expect(screen.getByText(s.question.incoming('bob'), { exact: false })).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: s.question.answerNow }));
    expect(screen.getByText('Our cat?')).toBeInTheDocument();
    await user.type(screen.getByLabelText(s.verify.yourAnswer), 'Felix');
    await user.click(screen.getByRole('button', { name: s.verify.sendAnswer }));
    expect(ipc.answer).toHaveBeenCalledWith('lobby', 'bob', 'Felix');
    applyEvent(m, { type: 'verification', nick: 'bob', verified: true, manual: false });
    flushSync();
    expect(screen.getByText(s.verify.resultOk('bob'))).toBeInTheDocument();
    expect(screen.queryByText(s.question.incoming('bob'), { exact: false })).toBeNull();
  });
});
