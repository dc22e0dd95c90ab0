import { expect, test, type Page } from '@playwright/test';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { s, warningText } from '../src/lib/strings';
import { setLocale } from '../src/lib/i18n';
import { ERROR_CODES } from '../src/lib/bindings';
import AxeBuilder from '@axe-core/playwright';

const stub = fileURLToPath(new URL('./tauri-stub.js', import.meta.url));
const HOSTILE = '<img src=x onerror=alert(1)><script>alert(2)</script><b>bold</b>';

test.beforeEach(async ({ page }) => {
  await page.addInitScript({ path: stub });
  // Any alert() means a hostile text ran as code.
  page.on('dialog', (d) => {
    throw new Error(`unexpected dialog: ${d.message()}`);
  });
  page.on('pageerror', (e) => {
    throw e;
  });
});

test.afterEach(async ({ page }) => {
  const violations = await page.evaluate(() => (window as any).__stub.violations as string[]);
  expect(violations, 'CSP violations').toEqual([]);
});

async function join(page: Page, room = 'Lobby', nick = 'alice') {
  await page.goto('/');
  await page.getByLabel(s.join.room).fill(room);
  await page.getByLabel(s.join.nick).fill(nick);
  await page.getByRole('button', { name: s.join.submit }).click();
  await expect(page.getByRole('heading', { name: '#lobby' })).toBeVisible();
}

async function leave(page: Page) {
  await page.getByRole('button', { name: s.room.leave }).click();
  await page.getByRole('alertdialog').getByRole('button', { name: s.room.leaveConfirm, exact: true }).click();
}

test('join screen: errors for a bad room, nickname and server', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByRole('heading', { name: s.join.title })).toBeVisible();
  await expect(page.getByLabel(s.join.thisComputer)).toBeChecked();
  await page.getByLabel(s.join.room).fill('bad room');
  await page.getByLabel(s.join.nick).fill('  ');
  await page.getByRole('button', { name: s.join.submit }).click();
  await expect(page.getByText(s.errors.invalid_room)).toBeVisible();
  await expect(page.getByText(s.errors.invalid_nickname)).toBeVisible();

  await page.getByLabel(s.join.room).fill('lobby');
  await page.getByLabel(s.join.nick).fill('alice');
  await page.getByLabel(s.join.otherServer).check();
  await page.getByLabel(s.join.serverUrl).fill('xmpp://unreachable.invalid');
  await page.getByRole('button', { name: s.join.submit }).click();
  await expect(page.getByText(s.errors.connection_refused)).toBeVisible();
  const calls = await page.evaluate(() => (window as any).__stub.calls.filter((c: any) => c.cmd === 'join'));
  expect(calls).toEqual([
    { cmd: 'join', args: { req: { room: 'lobby', nick: 'alice', server: { kind: 'url', url: 'xmpp://unreachable.invalid', pin: null } } } },
  ]);
});

test('every error code a command can return has its own sentence on the join screen', async ({ page }) => {
  await page.goto('/');
  await page.getByLabel(s.join.room).fill('lobby');
  await page.getByLabel(s.join.nick).fill('alice');
  await page.getByLabel(s.join.otherServer).check();
  for (const code of ERROR_CODES) {
    await page.getByLabel(s.join.serverUrl).fill(`xmpp://fail.invalid/?code=${code}`);
    await page.getByRole('button', { name: s.join.submit }).click();
    const alert = page.getByRole('alert').filter({ hasText: s.errors[code] });
    await expect(alert, code).toBeVisible();
    await expect(alert).not.toContainText(s.errors.generic);
    if (code === 'registration_refused') await expect(alert.getByTestId('error-detail')).toHaveText('resource-constraint');
    if (code === 'certificate_refused') await expect(alert.getByTestId('seen-key')).toHaveText('sha256/' + 'c'.repeat(43));
  }
});

test('room: members, hostile text stays text, sending with confirmation', async ({ page }) => {
  await join(page);
  const members = page.getByRole('list', { name: s.room.members });
  await expect(members.getByText('bob')).toBeVisible();
  await expect(members.getByText('0123 4567 89ab cdef')).toBeVisible();
  await expect(members.getByText(s.room.unverified)).toBeVisible();

  const log = page.getByRole('log', { name: s.room.conversation });
  await expect(log.getByText(HOSTILE)).toBeVisible();
  expect(await page.locator('.messages img, .messages script, .messages b').count()).toBe(0);

  const box = page.getByLabel(s.room.composer);
  await expect(box).toBeFocused();
  await box.fill('first line');
  await box.press('Shift+Enter');
  await box.pressSequentially('second line');
  await expect(box).toHaveValue('first line\nsecond line');
  await box.press('Enter');
  await expect(box).toHaveValue('');
  const mine = log.locator('.message.mine');
  await expect(mine.locator('.text')).toHaveText('first line\nsecond line');
  await expect(mine.getByText(s.room.confirmed(1, 1))).toBeVisible();
  await expect(mine.getByRole('progressbar', { name: s.room.confirmBar })).toHaveAttribute('max', '1');
});

test('warnings and connection banner; unconfirmed flag', async ({ page }) => {
  await join(page);
  await page.evaluate(() => ((window as any).__stub.holdConfirmations = true));
  await page.getByLabel(s.room.composer).fill('are you there?');
  await page.getByLabel(s.room.composer).press('Enter');
  await expect(page.getByText(s.room.confirmed(0, 1))).toBeVisible();
  await page.evaluate(() => {
    const st = (window as any).__stub;
    st.emit({ type: 'warning', code: 'unconfirmed', message: 'bob did not confirm a message', id: 'm1' });
    st.emit({ type: 'warning', code: 'key_changed', message: 'the key of <b>bob</b> changed', id: null, who: ['<b>bob</b>'] });
    st.emit({ type: 'connection', state: 'reconnecting', attempt: 2, delay_ms: 60_000 });
  });
  await expect(page.getByText(s.room.unconfirmed, { exact: true })).toBeVisible();
  await expect(page.getByRole('status').filter({ hasText: 'attempt 2' })).toBeVisible();
  // The UI's own sentence, the nickname as text.
  await expect(page.getByText(warningText('key_changed', ['<b>bob</b>'], null, ''), { exact: true })).toBeVisible();
  expect(await page.locator('.warnings b').count()).toBe(0);
  await page.getByRole('button', { name: s.warnings.dismiss }).first().click();
  await expect(page.getByText('bob did not confirm a message', { exact: true })).toHaveCount(0);
  await page.evaluate(() => (window as any).__stub.emit({ type: 'connection', state: 'connected' }));
  await expect(page.getByText('attempt 2')).toHaveCount(0);
});

test('reconnecting: a countdown, and "Retry now" asks the app to try at once', async ({ page }) => {
  await join(page);
  await page.evaluate(() =>
    (window as any).__stub.emit({ type: 'connection', state: 'reconnecting', attempt: 3, delay_ms: 30_000 }),
  );
  const status = page.getByRole('status').filter({ hasText: 'attempt 3' });
  await expect(status).toHaveText(s.connection.reconnectingIn(3, 30));
  // The countdown goes down.
  await expect(status).toHaveText(s.connection.reconnectingIn(3, 28), { timeout: 5000 });
  await page.getByRole('button', { name: s.connection.retryNow }).click();
  expect(await page.evaluate(() => (window as any).__stub.calls.filter((c: any) => c.cmd === 'retry_now'))).toEqual([
    { cmd: 'retry_now', args: { room: 'lobby' } },
  ]);
  await expect(status).toHaveCount(0);
  await expect(page.getByRole('button', { name: s.connection.retryNow })).toHaveCount(0);
  // A short delay runs out: "trying now", and the button waits for the next attempt.
  await page.evaluate(() =>
    (window as any).__stub.emit({ type: 'connection', state: 'reconnecting', attempt: 4, delay_ms: 500 }),
  );
  await expect(page.getByRole('status')).toHaveText(s.connection.reconnectingNow(4));
  await expect(page.getByRole('button', { name: s.connection.retryNow })).toBeDisabled();
});

test('closing the window while in a room (no tray) asks before quitting', async ({ page }) => {
  await join(page);
  await page.evaluate(() => (window as any).__stub.emitRaw('close_requested', null));
  const dialog = page.getByRole('alertdialog', { name: s.quit.title });
  await expect(dialog).toContainText(s.quit.body('#lobby'));
  await expect(dialog.getByRole('button', { name: s.quit.cancel })).toBeFocused();
  await page.keyboard.press('Escape');
  await expect(dialog).toHaveCount(0);
  expect(await page.evaluate(() => (window as any).__stub.quits)).toBe(0);
  await page.evaluate(() => (window as any).__stub.emitRaw('close_requested', null));
  await dialog.getByRole('button', { name: s.quit.confirm, exact: true }).click();
  expect(await page.evaluate(() => (window as any).__stub.quits)).toBe(1);
});

test('messages show the local time, the full date on hover', async ({ page }) => {
  await join(page);
  const log = page.getByRole('log', { name: s.room.conversation });
  const time = log.locator('.message').filter({ hasText: HOSTILE }).locator('time');
  await expect(time).toHaveText(/^\d{1,2}:\d{2}/);
  const [datetime, title] = await Promise.all([time.getAttribute('datetime'), time.getAttribute('title')]);
  const at = Date.parse(datetime ?? '');
  expect(Math.abs(Date.now() - at)).toBeLessThan(60_000);
  expect(title).toContain(String(new Date(at).getFullYear()));
  expect(title).toContain(new Intl.DateTimeFormat(undefined, { weekday: 'long' }).format(at));
});

test('unread marks on the tabs and a "new messages" line', async ({ page }) => {
  await join(page);
  await page.getByRole('button', { name: s.room.openPrivate('bob') }).click();
  await expect(page.getByRole('tab', { name: s.room.privateWith('bob') })).toHaveAttribute('aria-selected', 'true');
  // Two group messages while the private chat is on screen.
  await page.evaluate(() => {
    const st = (window as any).__stub;
    st.emit({ type: 'message', id: 'u1', nick: 'bob', text: 'first unseen', private: false });
    st.emit({ type: 'message', id: 'u2', nick: 'bob', text: 'second unseen', private: false });
  });
  const group = page.getByRole('tab', { name: `${s.room.group}, ${s.room.unread(2)}` });
  await expect(group).toBeVisible();
  await expect(group.locator('.unread-count')).toHaveText('2');
  await group.click();
  await expect(page.getByRole('tab', { name: s.room.group, exact: true })).toHaveAttribute('aria-selected', 'true');
  await expect(page.locator('.unread-count')).toHaveCount(0);
  // The line sits right above the first message not seen.
  const items = page.getByRole('log', { name: s.room.conversation }).locator('li');
  const texts = await items.allTextContents();
  const line = texts.findIndex((t) => t.includes(s.room.newMessages));
  expect(line).toBeGreaterThan(0);
  expect(texts[line + 1]).toContain('first unseen');
  // A message in the chat on screen is seen at once; one in the other chat is counted.
  await page.evaluate(() => {
    const st = (window as any).__stub;
    st.emit({ type: 'message', id: 'u3', nick: 'bob', text: 'seen at once', private: false });
    st.emit({ type: 'message', id: 'p9', nick: 'bob', text: 'private, unseen', private: true });
  });
  await expect(page.getByRole('tab', { name: `${s.room.privateWith('bob')}, ${s.room.unread(1)}` })).toBeVisible();
  await expect(page.getByRole('tab', { name: s.room.group, exact: true })).toBeVisible();
});

test('leaving asks first; "Stay" keeps the room', async ({ page }) => {
  await join(page);
  await page.getByRole('button', { name: s.room.leave }).click();
  const dialog = page.getByRole('alertdialog', { name: s.room.leaveTitle('lobby') });
  await expect(dialog).toContainText(s.room.leaveBody);
  await expect(dialog.getByRole('button', { name: s.room.leaveCancel })).toBeFocused();
  await page.keyboard.press('Enter');
  await expect(dialog).toHaveCount(0);
  await expect(page.getByRole('heading', { name: '#lobby' })).toBeVisible();
  expect(await page.evaluate(() => (window as any).__stub.calls.filter((c: any) => c.cmd === 'leave'))).toEqual([]);
  await page.getByRole('button', { name: s.room.leave }).click();
  await page.getByRole('alertdialog').getByRole('button', { name: s.room.leaveConfirm, exact: true }).click();
  await expect(page.getByRole('heading', { name: s.join.title })).toBeVisible();
  expect(await page.evaluate(() => (window as any).__stub.calls.filter((c: any) => c.cmd === 'leave'))).toHaveLength(1);
});

test('private chat opens as a tab from the member list', async ({ page }) => {
  await join(page);
  await page.getByRole('button', { name: s.room.openPrivate('bob') }).click();
  await expect(page.getByRole('tab', { name: s.room.privateWith('bob') })).toHaveAttribute('aria-selected', 'true');
  await page.getByLabel(s.room.composerPrivate('bob')).fill('just for you');
  await page.getByLabel(s.room.composerPrivate('bob')).press('Enter');
  const log = page.getByRole('log', { name: s.room.privateWith('bob') });
  await expect(log.getByText('just for you')).toBeVisible();
  await expect(log.getByText(HOSTILE)).toBeVisible();
  expect(await page.locator('.messages img, .messages script, .messages b').count()).toBe(0);
  // Arrow keys move between chats.
  await page.getByRole('tab', { name: s.room.privateWith('bob') }).press('ArrowLeft');
  await expect(page.getByRole('tab', { name: s.room.group })).toHaveAttribute('aria-selected', 'true');
  await expect(page.getByRole('tab', { name: s.room.group })).toBeFocused();
});

test('verification dialog: fingerprints, safety number, QR, mark and secret question', async ({ page }) => {
  await join(page);
  await page.getByRole('button', { name: s.room.verify('bob') }).click();
  const dialog = page.getByRole('dialog', { name: s.verify.title('bob') });
  await expect(dialog).toBeVisible();
  await expect(dialog.getByTestId('my-fingerprint')).toHaveText('fedc ba98 7654 3210 fedc ba98 7654 3210 fedc ba98');
  await expect(dialog.getByTestId('their-fingerprint')).toHaveText('0123 4567 89ab cdef 0123 4567 89ab cdef 0123 4567');
  await expect(dialog.getByTestId('safety-number')).toContainText('12345 67890');
  const qr = dialog.getByRole('img', { name: s.verify.qr('bob') });
  await expect(qr).toBeVisible();
  const box = await qr.boundingBox();
  expect(box?.width).toBeGreaterThan(100);

  await dialog.getByRole('button', { name: s.verify.mark }).click();
  await expect(dialog.getByText(s.verify.isVerified('bob'))).toBeVisible();

  await dialog.getByLabel(s.verify.question).fill('Where did we meet?');
  await dialog.getByLabel(s.verify.answer).fill('Paris');
  await dialog.getByRole('button', { name: s.verify.ask }).click();
  await expect(dialog.getByText(s.verify.resultOk('bob'))).toBeVisible();
  const ask = await page.evaluate(() => (window as any).__stub.calls.find((c: any) => c.cmd === 'ask'));
  expect(ask.args).toEqual({ room: 'lobby', nick: 'bob', question: 'Where did we meet?', answer: 'Paris' });

  await dialog.press('Escape');
  await expect(dialog).toHaveCount(0);
  await expect(page.getByRole('list', { name: s.room.members }).getByText(s.room.verified, { exact: true })).toBeVisible();
});

test('answering a question from a member, and leaving', async ({ page }) => {
  await join(page);
  await page.evaluate(() => (window as any).__stub.emit({ type: 'question', nick: 'bob', question: 'Our cat?' }));
  await page.getByRole('button', { name: s.question.answerNow }).click();
  const dialog = page.getByRole('dialog');
  await expect(dialog.getByText('Our cat?')).toBeVisible();
  await dialog.getByLabel(s.verify.yourAnswer).fill('Felix');
  await dialog.getByRole('button', { name: s.verify.sendAnswer }).click();
  await expect(dialog.getByText(s.verify.resultOk('bob'))).toBeVisible();
  await dialog.getByRole('button', { name: s.verify.close }).click();
  await leave(page);
  await expect(page.getByRole('heading', { name: s.join.title })).toBeVisible();
});

test('usable at a narrow width, in dark mode', async ({ page }) => {
  await page.setViewportSize({ width: 360, height: 700 });
  await page.emulateMedia({ colorScheme: 'dark' });
  await join(page);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await expect(page.getByLabel(s.room.composer)).toBeVisible();
  await expect(page.getByRole('button', { name: s.room.verify('bob') })).toBeVisible();
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  expect(bg).toBe('rgb(21, 24, 28)');
});

/** Visible controls whose centre shows something else: covered by another element. */
async function coveredControls(page: Page): Promise<string[]> {
  return page.evaluate(() =>
    [...document.querySelectorAll<HTMLElement>('button, input, textarea, select, summary, a')]
      .filter((e) => {
        const r = e.getBoundingClientRect();
        const [x, y] = [r.x + r.width / 2, r.y + r.height / 2];
        if (r.width === 0 || x < 0 || y < 0 || x >= innerWidth || y >= innerHeight) return false;
        const at = document.elementFromPoint(x, y);
        return !(at && (at === e || e.contains(at) || at.contains(e) || at.closest('label')?.contains(e)));
      })
      .map((e) => e.outerHTML.slice(0, 100)),
  );
}

test('no control lies under another, wide or narrow', async ({ page }) => {
  for (const [width, height] of [
    [1280, 720],
    [960, 680],
    [360, 700],
  ]) {
    await page.setViewportSize({ width, height });
    await page.goto('/');
    await expect(page.getByRole('button', { name: s.join.submit })).toBeVisible();
    expect(await coveredControls(page), `join screen at ${width}x${height}`).toEqual([]);
    await join(page);
    await expect(page.getByRole('button', { name: s.settings.open })).toBeVisible();
    expect(await coveredControls(page), `room at ${width}x${height}`).toEqual([]);
  }
});

test('dialogs keep Tab inside and give the focus back when closed', async ({ page }) => {
  await join(page);
  const opener = page.getByRole('button', { name: s.room.verify('bob') });
  await opener.focus();
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog');
  await expect(dialog).toBeVisible();
  const inside = () => page.evaluate(() => !!document.activeElement?.closest('[role=dialog]'));
  // More presses than the dialog has controls: the focus goes round, never out.
  for (let i = 0; i < 25; i++) {
    await page.keyboard.press('Tab');
    expect(await inside(), `Tab ${i + 1}`).toBe(true);
  }
  for (let i = 0; i < 5; i++) {
    await page.keyboard.press('Shift+Tab');
    expect(await inside(), `Shift+Tab ${i + 1}`).toBe(true);
  }
  await page.keyboard.press('Escape');
  await expect(dialog).toBeHidden();
  await expect(opener).toBeFocused();
});

test('settings panel: keyboard reachable, keyring error shown, forget', async ({ page }) => {
  await join(page);
  await page.evaluate(() => ((window as any).__stub.noKeyring = true));
  await page.getByRole('button', { name: s.settings.open }).click();
  const dialog = page.getByRole('dialog', { name: s.settings.title });
  const content = dialog.getByRole('checkbox', { name: s.settings.showContent });
  await expect(content).not.toBeChecked();
  // The language comes first, then the notifications.
  await expect(dialog.getByRole('combobox', { name: s.settings.language })).toBeFocused();
  await page.keyboard.press('Tab');
  await expect(content).toBeFocused();
  await page.keyboard.press('Space');
  await expect(content).toBeChecked();
  await dialog.getByRole('checkbox', { name: s.settings.remember }).click();
  await expect(dialog.getByRole('alert')).toHaveText(s.errors.keyring_unavailable);
  await expect(dialog.getByRole('checkbox', { name: s.settings.remember })).not.toBeChecked();
  await page.evaluate(() => ((window as any).__stub.noKeyring = false));
  await dialog.getByRole('checkbox', { name: s.settings.remember }).check();
  await expect(dialog.getByRole('checkbox', { name: s.settings.remember })).toBeChecked();
  await dialog.getByRole('button', { name: s.settings.forget }).click();
  await expect(dialog.getByText(s.settings.forgotten)).toBeVisible();
  await expect(dialog.getByRole('checkbox', { name: s.settings.remember })).not.toBeChecked();
  await page.keyboard.press('Escape');
  await expect(dialog).toBeHidden();
});

test('links: only http(s), opened after confirmation; a notification click opens the chat', async ({ page }) => {
  await join(page);
  const text = 'see https://example.org/a?b=1. and javascript:alert(1) data:text/html,x file:///etc/passwd';
  await page.evaluate((t) => (window as any).__stub.emit({ type: 'message', id: 'l1', nick: 'bob', text: t, private: false }), text);
  const log = page.getByRole('log', { name: s.room.conversation });
  const msg = log.locator('.message').filter({ hasText: 'see ' });
  await expect(msg.locator('.text')).toHaveText(text);
  await expect(msg.locator('.link')).toHaveCount(1);
  await expect(page.locator('.messages a')).toHaveCount(0);
  await msg.getByRole('button', { name: s.links.label('https://example.org/a?b=1') }).click();
  const dialog = page.getByRole('alertdialog', { name: s.links.title });
  await expect(dialog.locator('#link-url')).toHaveText('https://example.org/a?b=1');
  await expect(dialog.getByRole('button', { name: s.links.cancel })).toBeFocused();
  await dialog.getByRole('button', { name: s.links.open }).click();
  await expect(dialog).toBeHidden();
  expect(await page.evaluate(() => (window as any).__stub.opened)).toEqual(['https://example.org/a?b=1']);

  await page.evaluate(() => (window as any).__stub.emitRaw('open_chat', { room: 'lobby', nick: 'bob' }));
  await expect(page.getByRole('tab', { name: s.room.privateWith('bob') })).toHaveAttribute('aria-selected', 'true');
});

const PIN = 'sha256/' + 'q'.repeat(43);
const LINK = `cryptocat://join?v=1&server=xmpp://192.168.1.20:5222&domain=localhost&pin=${PIN}&room=Garden`;

async function openInvitePanel(page: Page) {
  await page.getByRole('button', { name: s.share.title }).click();
  const dialog = page.getByRole('dialog', { name: s.share.title });
  await expect(dialog.getByTestId('invite-panel')).toBeVisible();
  return dialog;
}

test('a link clicked while the app runs fills the join screen; joining goes through the link', async ({ page }) => {
  await page.goto('/');
  await page.getByLabel(s.join.room).fill('typed-room');
  await page.evaluate((link) => (window as any).__stub.openLink(link), LINK);
  await expect(page.getByRole('heading', { name: s.invite.title })).toBeVisible();
  await expect(page.getByTestId('invite-room')).toHaveText('#garden');
  await expect(page.getByTestId('invite-hosts')).toHaveText('192.168.1.20');
  await expect(page.getByTestId('invite-key')).toContainText(s.invite.keyMark);
  await expect(page.getByLabel(s.join.nick)).toBeFocused();
  await page.getByLabel(s.join.nick).fill('carol');
  await page.getByRole('button', { name: s.join.submit }).click();
  await expect(page.getByRole('heading', { name: '#garden' })).toBeVisible();
  const calls = await page.evaluate(() => (window as any).__stub.calls.filter((c: any) => c.cmd === 'join'));
  expect(calls.map((c: any) => c.args.req)).toEqual([{ room: 'garden', nick: 'carol', server: { kind: 'invite', link: LINK } }]);
  // The room's invite panel offers the same server to the next person.
  const dialog = await openInvitePanel(page);
  await expect(dialog.getByTestId('invite-link-server_in_use')).toHaveText(LINK);
  await expect(dialog.getByText(s.share.who.server_in_use)).toBeVisible();
});

test('a link given at launch is shown once the window is up; a bad one says what is wrong', async ({ page }) => {
  await page.addInitScript((link) => (window as any).__stub.launchWith(link), LINK.replace('xmpp://192.168.1.20', 'xmpp://wrong.example.org'));
  await page.goto('/');
  await expect(page.getByTestId('invite-room')).toHaveText('#garden');
  await page.getByLabel(s.join.nick).fill('carol');
  await page.getByRole('button', { name: s.join.submit }).click();
  await expect(page.getByText(s.errors.wrong_server)).toBeVisible();
  await expect(page.getByTestId('seen-key')).toHaveText('sha256/' + 'z'.repeat(43));

  await page.evaluate(() => (window as any).__stub.openLink('cryptocat://join?v=2&room=x'));
  await expect(page.getByRole('alert')).toContainText(s.errors.invalid_invite);
  await expect(page.getByRole('alert')).toContainText('version 2');
  await expect(page.getByLabel(s.join.room)).toBeVisible();
});

test('"Another server" takes a pasted invite link, or an address with a key pin', async ({ page }) => {
  await page.goto('/');
  await page.getByLabel(s.join.otherServer).check();
  await page.getByLabel(s.join.serverUrl).fill(LINK);
  await expect(page.getByTestId('invite-room')).toHaveText('#garden');
  await page.getByRole('button', { name: s.invite.other }).click();
  await page.getByLabel(s.join.room).fill('lobby');
  await page.getByLabel(s.join.nick).fill('alice');
  await page.getByLabel(s.join.otherServer).check();
  await page.getByLabel(s.join.serverUrl).fill('xmpp://example.org');
  await page.getByLabel(s.join.pin).fill(PIN);
  await page.getByRole('button', { name: s.join.submit }).click();
  await expect(page.getByRole('heading', { name: '#lobby' })).toBeVisible();
  const calls = await page.evaluate(() => (window as any).__stub.calls.filter((c: any) => c.cmd === 'join'));
  expect(calls.map((c: any) => c.args.req.server)).toEqual([{ kind: 'url', url: 'xmpp://example.org', pin: PIN }]);
});

test('invite panel: the built-in server on this computer only, with copy, QR code and command', async ({ page, context }) => {
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await join(page);
  const dialog = await openInvitePanel(page);
  const link = dialog.getByTestId('invite-link-this_computer');
  await expect(link).toContainText('cryptocat://join?v=1&server=xmpp://127.0.0.1:5222');
  await expect(link).toContainText(`pin=${PIN}`);
  await expect(dialog.getByText(s.share.who.this_computer)).toBeVisible();
  await expect(dialog.getByRole('img', { name: s.share.qr(s.share.way.this_computer) })).toBeVisible();
  await expect(dialog.getByTestId('invite-command-this_computer')).toHaveText(`cryptocat join "${await link.textContent()}" --nick NICK`);
  await expect(dialog.getByText(s.share.lanOff)).toBeVisible();
  await expect(dialog.getByTestId('invite-local_network')).toHaveCount(0);
  await dialog.getByTestId('copy-this_computer').click();
  await expect(dialog.getByTestId('copy-this_computer')).toHaveText(s.share.copied);
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(await link.textContent());
  await page.keyboard.press('Escape');
  await expect(dialog).toBeHidden();
});

test('invite panel on the local network (opt-in on the join screen); a new key is refused while in use', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByLabel(s.join.localNetwork)).not.toBeChecked();
  await page.getByLabel(s.join.room).fill('lobby');
  await page.getByLabel(s.join.nick).fill('alice');
  await page.getByLabel(s.join.localNetwork).check();
  await page.getByRole('button', { name: s.join.submit }).click();
  const dialog = await openInvitePanel(page);
  await expect(dialog.getByTestId('invite-link-local_network')).toContainText('server=xmpp://192.168.1.20:5222');
  await expect(dialog.getByText(s.share.who.local_network)).toBeVisible();
  await expect(dialog.getByText(s.share.who.this_computer)).toBeVisible();
  await expect(dialog.getByRole('img', { name: s.share.qr(s.share.way.local_network) })).toBeVisible();
  await expect(dialog.getByText(s.share.lanOff)).toHaveCount(0);
  const calls = await page.evaluate(() => (window as any).__stub.calls.filter((c: any) => c.cmd === 'join'));
  expect(calls[0].args.req.server).toEqual({ kind: 'this_computer', local_network: true });
  // Two ways in with their QR codes are taller than the window: the content scrolls and the
  // close button stays in view below it.
  await page.setViewportSize({ width: 960, height: 600 });
  const body = dialog.locator('.dialog-body');
  expect(await body.evaluate((e) => e.scrollHeight > e.clientHeight)).toBe(true);
  await expect(dialog.getByRole('button', { name: s.verify.close })).toBeInViewport({ ratio: 1 });
  await body.evaluate((e) => e.scrollTo(0, e.scrollHeight));
  await expect(dialog.getByRole('button', { name: s.verify.close })).toBeInViewport({ ratio: 1 });
  await dialog.getByRole('button', { name: s.verify.close }).click();

  await page.getByRole('button', { name: s.settings.open }).click();
  const settings = page.getByRole('dialog', { name: s.settings.title });
  await settings.getByRole('button', { name: s.settings.renewKey }).click();
  await expect(settings.getByRole('alert')).toHaveText(s.errors.relay_key_in_use);
  await settings.getByRole('button', { name: s.settings.close }).click();
  await leave(page);
  await page.getByRole('button', { name: s.settings.open }).click();
  await settings.getByRole('button', { name: s.settings.renewKey }).click();
  await expect(settings.getByText(s.settings.renewed)).toBeVisible();
  expect(await page.evaluate(() => (window as any).__stub.renewed)).toBe(1);
});

/** axe-core's violations on the page as it is now (WCAG 2.1 A/AA and best practices). */
async function axe(page: Page, screen: string) {
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']).analyze();
  const found = result.violations.map((v) => `${screen}: ${v.id} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  expect(found, screen).toEqual([]);
  // The check ran: it looked at rules and passed some.
  expect(result.passes.length, screen).toBeGreaterThan(10);
}

for (const scheme of ['light', 'dark'] as const) {
  test(`accessibility: no axe violation on any screen (${scheme})`, async ({ page }) => {
    // Fourteen axe runs take a while on a loaded machine.
    test.setTimeout(120_000);
    await page.emulateMedia({ colorScheme: scheme });
    await page.goto('/');
    await expect(page.getByRole('heading', { name: s.join.title })).toBeVisible();
    await axe(page, 'join');
    await page.getByRole('button', { name: s.about.open }).click();
    await expect(page.getByRole('dialog', { name: s.about.title })).toBeVisible();
    await axe(page, 'about');
    await page.keyboard.press('Escape');
    await page.getByRole('button', { name: s.join.submit }).click();
    await page.getByLabel(s.join.otherServer).check();
    await page.getByLabel(s.join.serverUrl).fill('xmpp://fail.invalid/?code=certificate_refused');
    await page.getByLabel(s.join.room).fill('lobby');
    await page.getByLabel(s.join.nick).fill('alice');
    await page.getByRole('button', { name: s.join.submit }).click();
    await expect(page.getByTestId('seen-key')).toBeVisible();
    await axe(page, 'join errors');
    await page.evaluate((link) => (window as any).__stub.openLink(link), LINK);
    await expect(page.getByTestId('invite-room')).toBeVisible();
    await axe(page, 'join invite');
    await page.getByRole('button', { name: s.invite.other }).click();

    await join(page);
    await page.evaluate(() => {
      const st = (window as any).__stub;
      st.emit({ type: 'warning', code: 'key_changed', message: 'the key of bob changed', id: null });
      st.emit({ type: 'error', code: 'rejoin_failed', message: 'x' });
      st.emit({ type: 'connection', state: 'reconnecting', attempt: 1, delay_ms: 30_000 });
      st.emit({ type: 'question', nick: 'bob', question: 'Our cat?' });
    });
    await page.getByRole('button', { name: s.room.openPrivate('bob') }).click();
    await page.evaluate(() => (window as any).__stub.emit({ type: 'message', id: 'a1', nick: 'bob', text: 'https://example.org', private: false }));
    await expect(page.locator('.tabs .unread-count')).toBeVisible();
    await axe(page, 'room with banners, a private tab and unread marks');
    await page.getByRole('tab', { name: s.room.group }).click();
    await page.getByLabel(s.room.composer).fill('sent and confirmed');
    await page.getByLabel(s.room.composer).press('Enter');
    await expect(page.getByText(s.room.confirmed(1, 1))).toBeVisible();
    await expect(page.getByTestId('new-messages')).toBeVisible();
    await axe(page, 'room, new messages');
    await page.getByRole('button', { name: s.links.label('https://example.org') }).click();
    await axe(page, 'link dialog');
    await page.keyboard.press('Escape');
    await page.getByRole('button', { name: s.room.verify('bob') }).click();
    await expect(page.getByRole('img', { name: s.verify.qr('bob') })).toBeVisible();
    await axe(page, 'verification');
    await page.keyboard.press('Escape');
    await page.getByRole('button', { name: s.share.title }).click();
    await expect(page.getByTestId('invite-panel')).toBeVisible();
    await axe(page, 'invite panel');
    await page.keyboard.press('Escape');
    await page.getByRole('button', { name: s.settings.open }).click();
    await expect(page.getByRole('checkbox', { name: s.settings.showContent })).toBeVisible();
    await axe(page, 'settings');
    await page.keyboard.press('Escape');
    await page.getByRole('button', { name: s.about.open }).click();
    await axe(page, 'about (in a room)');
    await page.keyboard.press('Escape');
    await page.evaluate(() => (window as any).__stub.emitRaw('close_requested', null));
    await expect(page.getByRole('alertdialog', { name: s.quit.title })).toBeVisible();
    await axe(page, 'quit confirmation');
    await page.keyboard.press('Escape');
    await page.getByRole('button', { name: s.room.leave }).click();
    await expect(page.getByRole('alertdialog', { name: s.room.leaveTitle('lobby') })).toBeVisible();
    await axe(page, 'leave confirmation');
  });
}

test('every icon is drawn (SVG, no emoji) and every icon-only button has a name and a tooltip', async ({ page }) => {
  await join(page);
  await page.evaluate(() => (window as any).__stub.emit({ type: 'warning', code: 'key_changed', message: 'x', id: null }));
  await page.getByRole('button', { name: s.room.openPrivate('bob') }).click();
  const text = await page.evaluate(() => document.body.innerText);
  expect(text.match(/\p{Extended_Pictographic}/gu) ?? []).toEqual([]);
  const bare = await page.evaluate(() =>
    [...document.querySelectorAll('button')]
      .filter((b) => (b.textContent ?? '').trim() === '')
      .filter((b) => !b.getAttribute('aria-label') || !b.getAttribute('title') || !b.querySelector('svg'))
      .map((b) => b.outerHTML.slice(0, 120)),
  );
  expect(bare).toEqual([]);
  expect(await page.locator('button.icon-button').count()).toBeGreaterThanOrEqual(3);
  // The member actions have visible words beside their icons.
  await expect(page.getByRole('button', { name: s.room.verify('bob') })).toHaveText(s.room.verifyAction);
  await expect(page.getByRole('button', { name: s.room.openPrivate('bob'), exact: true })).toHaveText(s.room.chatAction);
});

test('the app icon on the join screen and in the about box', async ({ page }) => {
  await page.goto('/');
  const icon = page.locator('.join h1 img.app-icon');
  await expect(icon).toBeVisible();
  expect(await icon.evaluate((i: HTMLImageElement) => i.complete && i.naturalWidth > 0)).toBe(true);
  await page.getByRole('button', { name: s.about.open }).click();
  const dialog = page.getByRole('dialog', { name: s.about.title });
  const version = JSON.parse(readFileSync(new URL('../../tauri.conf.json', import.meta.url), 'utf8')).version;
  await expect(dialog.getByTestId('about-version')).toHaveText(s.about.version(version));
  expect(await dialog.locator('img.app-icon').evaluate((i: HTMLImageElement) => i.complete && i.naturalWidth > 0)).toBe(true);
});

test('the server and nickname are remembered across a restart only when asked, never the room', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByLabel(s.join.remember)).not.toBeChecked();
  await page.getByLabel(s.join.room).fill('secret-room');
  await page.getByLabel(s.join.nick).fill('alice');
  await page.getByLabel(s.join.otherServer).check();
  await page.getByLabel(s.join.serverUrl).fill('xmpp://example.org');
  await page.getByLabel(s.join.pin).fill(PIN);
  await page.getByRole('button', { name: s.join.submit }).click();
  await expect(page.getByRole('heading', { name: '#secret-room' })).toBeVisible();
  // Not asked: nothing kept.
  await page.reload();
  await expect(page.getByLabel(s.join.nick)).toHaveValue('');
  await page.getByLabel(s.join.room).fill('secret-room');
  await page.getByLabel(s.join.nick).fill('alice');
  await page.getByLabel(s.join.otherServer).check();
  await page.getByLabel(s.join.serverUrl).fill('xmpp://example.org');
  await page.getByLabel(s.join.pin).fill(PIN);
  await page.getByLabel(s.join.remember).check();
  await page.getByRole('button', { name: s.join.submit }).click();
  await expect(page.getByRole('heading', { name: '#secret-room' })).toBeVisible();
  const kept = await page.evaluate(() => localStorage.getItem('stub-remembered') ?? '');
  expect(kept).not.toContain('secret-room');
  // The app again: server, key pin and nickname are filled in, the room is not.
  await page.reload();
  await expect(page.getByLabel(s.join.nick)).toHaveValue('alice');
  await expect(page.getByLabel(s.join.otherServer)).toBeChecked();
  await expect(page.getByLabel(s.join.serverUrl)).toHaveValue('xmpp://example.org');
  await expect(page.getByLabel(s.join.pin)).toHaveValue(PIN);
  await expect(page.getByLabel(s.join.room)).toHaveValue('');
  await expect(page.getByLabel(s.join.remember)).toBeChecked();
  // Unticked at the next join: forgotten.
  await page.getByLabel(s.join.room).fill('lobby');
  await page.getByLabel(s.join.remember).uncheck();
  await page.getByRole('button', { name: s.join.submit }).click();
  await expect(page.getByRole('heading', { name: '#lobby' })).toBeVisible();
  await page.reload();
  await expect(page.getByLabel(s.join.nick)).toHaveValue('');
  await expect(page.getByLabel(s.join.thisComputer)).toBeChecked();
});

test('two rooms at once: a room list with unread counts, the title counts them all, leaving one keeps the other', async ({ page }) => {
  await join(page);
  const rooms = page.getByRole('navigation', { name: s.roomList.label });
  await rooms.getByRole('button', { name: s.roomList.joinAnother }).click();
  await expect(rooms.getByRole('button', { name: s.roomList.cancel })).toBeVisible();
  await axe(page, 'joining another room');
  await page.getByLabel(s.join.room).fill('garden');
  await page.getByLabel(s.join.nick).fill('alice');
  await page.getByRole('button', { name: s.join.submit }).click();
  await expect(page.getByRole('heading', { name: '#garden' })).toBeVisible();
  await expect(rooms.getByRole('button', { name: '#garden', exact: true })).toHaveAttribute('aria-current', 'page');
  // Two messages in #lobby while #garden is on screen; one in #garden, seen at once.
  await page.evaluate(() => {
    const st = (window as any).__stub;
    st.emitTo('lobby', { type: 'message', id: 'x1', nick: 'bob', text: 'in the lobby', private: false });
    st.emitTo('lobby', { type: 'message', id: 'x2', nick: 'bob', text: 'still the lobby', private: true });
    st.emitTo('garden', { type: 'message', id: 'x3', nick: 'bob', text: 'in the garden', private: false });
  });
  await expect(rooms.getByRole('button', { name: `#lobby, ${s.room.unread(2)}` })).toBeVisible();
  await expect(rooms.getByRole('button', { name: '#garden', exact: true })).toBeVisible();
  await expect(page.getByRole('log', { name: s.room.conversation }).getByText('in the garden')).toBeVisible();
  await expect(page).toHaveTitle(s.roomList.title(2));
  await axe(page, 'two rooms, unread in the other');
  expect(await page.evaluate(() => (window as any).__stub.unreadTotal)).toBe(2);
  // Over to #lobby: its group chat is seen, the private one still counts.
  await rooms.getByRole('button', { name: `#lobby, ${s.room.unread(2)}` }).click();
  await expect(page.getByRole('heading', { name: '#lobby' })).toBeVisible();
  await expect(page.getByRole('log', { name: s.room.conversation }).getByText('in the lobby')).toBeVisible();
  await expect(rooms.getByRole('button', { name: `#lobby, ${s.room.unread(1)}` })).toBeVisible();
  await expect(page.getByRole('tab', { name: `${s.room.privateWith('bob')}, ${s.room.unread(1)}` })).toBeVisible();
  await expect(page).toHaveTitle(s.roomList.title(1));
  // Leaving #lobby keeps #garden, which comes on screen.
  await leave(page);
  await expect(page.getByRole('heading', { name: '#garden' })).toBeVisible();
  await expect(rooms.getByRole('button', { name: '#lobby' })).toHaveCount(0);
  await expect(page).toHaveTitle(s.appName);
  // Quitting names the rooms still joined.
  await page.evaluate(() => (window as any).__stub.emitRaw('close_requested', null));
  await expect(page.getByRole('alertdialog', { name: s.quit.title })).toContainText(s.quit.body('#garden'));
  await page.keyboard.press('Escape');
  await leave(page);
  await expect(page.getByRole('heading', { name: s.join.title })).toBeVisible();
  await expect(page.getByRole('navigation', { name: s.roomList.label })).toHaveCount(0);
});

test('the language picker: Arabic at once, right to left, kept over a reload, then the system\'s again', async ({ page }) => {
  await page.goto('/');
  await expect(page.locator('html')).toHaveAttribute('dir', 'ltr');
  await page.getByRole('button', { name: s.settings.open }).click();
  const picker = page.getByRole('combobox', { name: s.settings.language });
  await expect(picker).toHaveValue('system');
  await picker.selectOption('ar');
  // At once, without a restart: the document, the open panel and the screen behind it.
  await expect(page.locator('html')).toHaveAttribute('dir', 'rtl');
  await expect(page.locator('html')).toHaveAttribute('lang', 'ar');
  const arDialog = page.getByRole('dialog', { name: 'الإعدادات' });
  await expect(arDialog.getByRole('checkbox', { name: 'كتم الإشعارات' })).toBeVisible();
  expect(await page.evaluate(() => (window as any).__stub.calls.filter((c: any) => c.cmd === 'set_settings').map((c: any) => c.args.next.language))).toEqual(['ar']);
  await axe(page, 'settings in Arabic');
  // The panel mirrors: a check box sits at the right of its label (the start side).
  const panel = await arDialog.boundingBox();
  const box = await arDialog.getByRole('checkbox', { name: 'كتم الإشعارات' }).boundingBox();
  expect(panel && box && box.x > panel.x + panel.width / 2).toBe(true);
  await page.keyboard.press('Escape');
  await expect(page.getByRole('heading', { name: 'الانضمام إلى غرفة' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'انضمام' })).toBeVisible();
  await axe(page, 'join screen in Arabic, chosen');
  // A reload (the app keeps its settings): Arabic again, from the first drawing on, even
  // while the settings are slow to come (the keyring is read first).
  await page.evaluate(() => localStorage.setItem('stub-slow-settings', '4000'));
  await page.reload();
  await expect(page.locator('html')).toHaveAttribute('dir', 'rtl', { timeout: 1000 });
  await expect(page.getByRole('heading', { name: 'الانضمام إلى غرفة' })).toBeVisible({ timeout: 1000 });
  await page.evaluate(() => localStorage.removeItem('stub-slow-settings'));
  await page.getByRole('button', { name: 'الإعدادات' }).click();
  await expect(page.getByRole('combobox', { name: 'اللغة' })).toHaveValue('ar');
  await page.getByRole('combobox', { name: 'اللغة' }).selectOption('system');
  // The browser speaks English.
  await expect(page.locator('html')).toHaveAttribute('dir', 'ltr');
  await expect(page.getByRole('dialog', { name: s.settings.title })).toBeVisible();
});

test.describe('in French (the system language)', () => {
  test.use({ locale: 'fr-FR' });
  test.afterEach(() => setLocale('en'));

  test('the join screen, the room and its plurals speak French', async ({ page }) => {
    setLocale('fr');
    await page.goto('/');
    await expect(page.locator('html')).toHaveAttribute('lang', 'fr');
    await expect(page.getByRole('heading', { name: 'Rejoindre un salon' })).toBeVisible();
    await join(page);
    await page.getByRole('button', { name: s.room.openPrivate('bob') }).click();
    await page.evaluate(() => {
      const st = (window as any).__stub;
      st.emit({ type: 'message', id: 'f1', nick: 'bob', text: 'un', private: false });
      st.emit({ type: 'message', id: 'f2', nick: 'bob', text: 'deux', private: false });
    });
    await expect(page.getByRole('tab', { name: 'Groupe, 2 messages non lus' })).toBeVisible();
    await expect(page.getByRole('button', { name: 'Quitter le salon' })).toBeVisible();
    await axe(page, 'room in French');
  });
});

test.describe('in Arabic (right to left)', () => {
  test.use({ locale: 'ar-EG' });
  test.afterEach(() => setLocale('en'));

  test('the layout runs right to left, and nothing overlaps or overflows', async ({ page }) => {
    setLocale('ar');
    await page.goto('/');
    await expect(page.locator('html')).toHaveAttribute('dir', 'rtl');
    await expect(page.getByRole('heading', { name: 'الانضمام إلى غرفة' })).toBeVisible();
    await axe(page, 'join screen, right to left');
    await join(page);
    // The members' column is on the right, the conversation on its left.
    const members = await page.locator('.sidebar').boundingBox();
    const chat = await page.locator('.chat').boundingBox();
    expect(members && chat && members.x > chat.x).toBe(true);
    // Our own messages sit on the left (the end side), others' on the right.
    await page.getByLabel(s.room.composer).fill('مرحبا');
    await page.getByLabel(s.room.composer).press('Enter');
    const mine = await page.locator('.message.mine').boundingBox();
    const theirs = await page.locator('.message:not(.mine)').first().boundingBox();
    expect(mine && theirs && mine.x < theirs.x).toBe(true);
    expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
    expect(await coveredControls(page)).toEqual([]);
    await axe(page, 'room, right to left');
  });
});
