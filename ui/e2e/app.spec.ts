import { expect, test, type Page } from '@playwright/test';
import { fileURLToPath } from 'node:url';
import { s } from '../src/lib/strings';

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
    st.emit({ type: 'warning', code: 'key_changed', message: 'the key of <b>bob</b> changed', id: null });
    st.emit({ type: 'connection', connection: { state: 'reconnecting', attempt: 2, delay_ms: 400 } });
  });
  await expect(page.getByText(`⚠ ${s.room.unconfirmed}`)).toBeVisible();
  await expect(page.getByRole('status').filter({ hasText: s.connection.reconnecting(2) })).toBeVisible();
  await expect(page.getByText('⚠ the key of <b>bob</b> changed')).toBeVisible();
  await page.getByRole('button', { name: s.warnings.dismiss }).first().click();
  await expect(page.getByText('⚠ bob did not confirm a message')).toHaveCount(0);
  await page.evaluate(() => (window as any).__stub.emit({ type: 'connection', connection: { state: 'connected' } }));
  await expect(page.getByText(s.connection.reconnecting(2))).toHaveCount(0);
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
  await expect(page.getByRole('list', { name: s.room.members }).getByText(`✔ ${s.room.verified}`)).toBeVisible();
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
  await page.getByRole('button', { name: s.room.leave }).click();
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
  await page.getByRole('button', { name: s.room.leave }).click();
  await page.getByRole('button', { name: s.settings.open }).click();
  await settings.getByRole('button', { name: s.settings.renewKey }).click();
  await expect(settings.getByText(s.settings.renewed)).toBeVisible();
  expect(await page.evaluate(() => (window as any).__stub.renewed)).toBe(1);
});
