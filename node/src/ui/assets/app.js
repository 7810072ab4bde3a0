// The cashier's screen. It keeps no state of its own: it draws what the node
// answers (GET /api/state) and sends each action with a client operation id;
// a request that got no answer is sent again with the same id, so the node
// applies it once. Amounts travel as the text typed; the node parses and
// computes them (the change shown while typing is a preview in integer
// centavos, the node's answer is what counts).
'use strict';

const T = JSON.parse(document.getElementById('labels').textContent);
const $ = (id) => document.getElementById(id);
let state = null;
let busy = false;
// Answers can arrive out of order (the status poll and an action travel on
// two connections): an action's answer is always drawn; a poll's answer
// only if no action started since the poll was sent.
let actions = 0;

class Refusal extends Error {}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function call(method, path, body) {
  const init = { method, headers: { 'X-Caja-Screen': '1' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  for (let attempt = 0; ; attempt++) {
    let r;
    try {
      r = await fetch(path, init);
    } catch (e) {
      // No answer: the node may or may not have applied it; the same op id
      // makes a retry safe.
      if (attempt >= 20) throw new Refusal(T.network_retry);
      say(T.network_retry, false);
      await sleep(Math.min(3000, 300 * (attempt + 1)));
      continue;
    }
    let v;
    try { v = await r.json(); } catch (e) { v = { message: T.network_retry }; }
    if (!r.ok) throw new Refusal(v.message || T.network_retry);
    return v;
  }
}

const post = (action, body) => call('POST', '/api/' + action, Object.assign({ op: crypto.randomUUID() }, body));
const get = (what) => call('GET', '/api/' + what);

function say(text, info, where) {
  const el = $(where || 'message');
  el.textContent = text || '';
  el.classList.toggle('info', !!info);
}

function openDialog(id) {
  const d = $(id);
  if (!d.open) d.showModal();
  const first = d.querySelector('input:not([type=hidden]), select, button');
  if (first) first.focus();
}

// Back to the item field, where the scanner types. After a modal dialog
// closes, Chromium may report the field focused with no caret in it (keys
// arrive, no text goes in): blur and focus again once the close is done.
function focusItem() {
  setTimeout(() => {
    if (anyDialog()) return;
    const i = $('item');
    i.blur();
    i.focus();
  }, 0);
}

function closeDialogs() {
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
  focusItem();
}

function anyDialog() {
  return document.querySelector('dialog[open]') !== null;
}

function render(s) {
  state = s;
  const bar = $('status');
  bar.replaceChildren(...s.status.map((i) => {
    const span = document.createElement('span');
    span.className = i.level;
    span.dataset.key = i.key;
    span.textContent = i.text;
    return span;
  }));
  $('shift-info').textContent = s.shift ? (T.cashier + ': ' + s.shift.cashier) : T.no_shift;
  const rows = s.cart.lines.map((l) => {
    const tr = document.createElement('tr');
    const price = l.overridden ? l.unit_price + ' (' + T.shelf_price + ': ' + l.shelf_price + ')' : l.unit_price;
    if (l.overridden) tr.className = 'overridden';
    else if (l.discount) tr.className = 'discounted';
    const total = l.discount ? l.total + ' (' + T.discount + ': −' + l.discount + ')' : l.total;
    for (const [text, cls] of [[l.name, ''], [l.qty, 'num'], [price, 'num'], [total, 'num']]) {
      const td = document.createElement('td');
      td.textContent = text;
      if (cls) td.className = cls;
      tr.appendChild(td);
    }
    const td = document.createElement('td');
    const p = document.createElement('button');
    p.type = 'button';
    p.textContent = T.change_price;
    p.setAttribute('aria-label', T.change_price + ' ' + l.name);
    p.addEventListener('click', () => startPrice(l));
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = T.remove;
    b.setAttribute('aria-label', T.remove + ' ' + l.name);
    b.addEventListener('click', () => act(() => post('remove', { line: l.id })));
    const d = document.createElement('button');
    d.type = 'button';
    d.textContent = T.discount;
    d.setAttribute('aria-label', T.discount + ' ' + l.name);
    d.addEventListener('click', () => startDiscount(l));
    td.append(p, d, b);
    tr.appendChild(td);
    return tr;
  });
  $('lines').replaceChildren(...rows);
  $('empty').hidden = s.cart.lines.length > 0;
  $('total').textContent = s.cart.total;
  $('tax').textContent = s.cart.tax;
  $('sale-discount').textContent = s.cart.sale_discount || '';
  $('quick').replaceChildren(...s.quick_keys.map((q) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = q.name + ' — ' + q.price;
    b.addEventListener('click', () => act(() => post('add', { entry: q.code })));
    return b;
  }));
  const shown = s.shown || {};
  $('shown-text').textContent = shown.text || '';
  $('shown-intents').textContent = [shown.intents, shown.intent_states].filter(Boolean).join(' ');
  $('shown-z').textContent = shown.z || '';
}

async function refresh() {
  const since = actions;
  try {
    const s = await get('state');
    if (!busy && since === actions) render(s);
  } catch (e) { /* the status poll tries again */ }
}

// Runs an action that answers with the new state; shows a refusal as the
// node worded it.
async function act(f, where) {
  if (busy) return null;
  busy = true;
  say(T.working, true, where);
  actions++;
  try {
    const s = await f();
    render(s);
    say(s.notice || '', true, where);
    return s;
  } catch (e) {
    say(e.message, false, where);
    return null;
  } finally {
    busy = false;
  }
}

// Display-only: "1,234.50" → 123450 centavos, without floating point.
function centavos(text) {
  const t = String(text || '').replace(/,/g, '').trim();
  const m = /^(\d+)(?:\.(\d{1,2}))?$/.exec(t);
  if (!m) return t === '' ? 0 : null;
  return parseInt(m[1], 10) * 100 + parseInt((m[2] || '0').padEnd(2, '0'), 10);
}

function rd(c) {
  const s = String(Math.abs(c));
  const whole = s.length > 2 ? s.slice(0, -2) : '0';
  return (c < 0 ? '-' : '') + 'RD$ ' + whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',') + '.' + s.slice(-2).padStart(2, '0');
}

function preview() {
  if (!state) return;
  const due = state.cart.total_minor;
  const parts = ['pay-cash', 'pay-card', 'pay-fiado', 'pay-transfer'].map((id) => centavos($(id).value));
  if (parts.some((p) => p === null)) { $('pay-preview').textContent = ''; return; }
  const paid = parts[0] + parts[1] + parts[2] + parts[3];
  $('pay-preview').textContent = paid >= due
    ? T.change_preview + ': ' + rd(Math.min(paid - due, parts[0]))
    : T.missing_preview + ': ' + rd(due - paid);
}

async function openPay() {
  if (!state || state.cart.lines.length === 0) { say(T.empty_cart); return; }
  $('pay-due').textContent = state.cart.total;
  for (const id of ['pay-cash', 'pay-card', 'pay-card-ref', 'pay-transfer', 'pay-transfer-ref', 'pay-fiado', 'pay-approver', 'pay-pin']) $(id).value = '';
  for (const id of ['pay-buyer-id', 'pay-buyer-name']) $(id).value = '';
  const doc = $('pay-document');
  doc.replaceChildren(doc.options[0], ...(state.documents || []).map((d) => {
    const o = document.createElement('option');
    o.value = d;
    o.textContent = d;
    return o;
  }));
  doc.value = '';
  // A changed price, or a discount beyond the register's limit, is approved
  // by a supervisor (registers with staff).
  $('pay-override-note').hidden = !state.cart.overrides;
  $('pay-discount-note').hidden = !state.cart.discount_approval;
  $('pay-approval').hidden = !((state.cart.overrides || state.cart.discount_approval) && state.staff);
  say('', false, 'pay-message');
  preview();
  openDialog('dlg-pay');
  try {
    const c = await get('customers');
    const sel = $('pay-customer');
    const keep = sel.value;
    sel.replaceChildren(sel.options[0], ...c.customers.map((x) => {
      const o = document.createElement('option');
      o.value = x.id;
      o.textContent = x.name + ' — ' + x.credit_left;
      return o;
    }));
    sel.value = keep;
  } catch (e) { /* paying without fiado still works */ }
}

async function openSales() {
  openDialog('dlg-sales');
  say(T.working, true, 'sales-message');
  let v;
  try { v = await get('sales'); } catch (e) { say(e.message, false, 'sales-message'); return; }
  say('', true, 'sales-message');
  $('sales-rows').replaceChildren(...v.sales.map((s) => {
    const tr = document.createElement('tr');
    for (const text of [s.time, s.number || '—', s.total, s.voided ? T.voided : '']) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.appendChild(td);
    }
    const td = document.createElement('td');
    const mk = (label, f) => {
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = label;
      b.setAttribute('aria-label', label + ' ' + (s.number || s.time) + ' ' + s.total);
      b.addEventListener('click', f);
      td.appendChild(b);
    };
    mk(T.reprint, async () => {
      const r = await act(() => post('reprint', { sale: s.sale_id }), 'sales-message');
      if (r && r.shown) say(r.shown.text, true, 'sales-message');
    });
    if (!s.voided) {
      mk(T.void, () => startVoid(s));
      mk(T['return'], () => startReturn(s));
    }
    tr.appendChild(td);
    return tr;
  }));
}

let target = null;
let priceLine = null;
// The line a discount is for; null: the whole sale.
let discountLine = null;
let debtCustomer = null;

// A discount on a cart line (its button) or on the whole sale (F5).
function startDiscount(l) {
  if (!state || state.cart.lines.length === 0) { say(T.empty_cart); return; }
  discountLine = l || null;
  $('discount-line').textContent = l ? l.name + ' — ' + l.total : T.discount_of_sale + ' — ' + state.cart.total;
  $('discount-amount').value = l ? '' : (state.cart.sale_discount_amount || '');
  say('', false, 'discount-message');
  openDialog('dlg-discount');
}

async function openCustomers() {
  for (const id of ['cust-name', 'cust-phone', 'cust-tax-id']) $(id).value = '';
  $('cust-limit').value = '0';
  openDialog('dlg-customers');
  await loadCustomers();
}

async function loadCustomers() {
  let v;
  try { v = await get('customers'); } catch (e) { say(e.message, false, 'customers-message'); return; }
  $('customer-rows').replaceChildren(...v.customers.map((c) => {
    const tr = document.createElement('tr');
    for (const text of [c.name, c.owes, c.credit_left]) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.appendChild(td);
    }
    const td = document.createElement('td');
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = T.pay_debt;
    b.setAttribute('aria-label', T.pay_debt + ' ' + c.name);
    b.addEventListener('click', () => startDebt(c));
    td.appendChild(b);
    const e = document.createElement('button');
    e.type = 'button';
    e.textContent = T.edit_customer;
    e.setAttribute('aria-label', T.edit_customer + ' ' + c.name);
    e.addEventListener('click', () => startEditCustomer(c));
    td.appendChild(e);
    tr.appendChild(td);
    return tr;
  }));
}

function startDebt(c) {
  debtCustomer = c;
  $('debt-customer').textContent = c.name + ' — ' + T.col_owes + ': ' + c.owes;
  $('debt-amount').value = '';
  $('debt-method').value = 'cash';
  say('', false, 'debt-message');
  $('dlg-customers').close();
  openDialog('dlg-debt');
}

// Edits a customer: the dialog starts from what the register knows.
let editCustomer = null;
function startEditCustomer(c) {
  editCustomer = c;
  $('edit-name').value = c.name;
  $('edit-phone').value = c.phone || '';
  $('edit-tax-id').value = c.tax_id || '';
  $('edit-limit').value = c.credit_limit;
  say('', false, 'customer-edit-message');
  $('dlg-customers').close();
  openDialog('dlg-customer-edit');
}

// Changes a cart line's price (kept in the node's cart until paid).
function startPrice(l) {
  if (!l) return;
  priceLine = l;
  $('price-line').textContent = l.name + ' — ' + l.unit_price;
  $('price-new').value = l.price;
  say('', false, 'price-message');
  openDialog('dlg-price');
  $('price-new').select();
}

function startVoid(s) {
  target = s;
  $('void-sale').textContent = (s.number || s.time) + ' — ' + s.total;
  for (const id of ['void-reason', 'void-approver', 'void-pin']) $(id).value = '';
  say('', false, 'void-message');
  $('dlg-sales').close();
  openDialog('dlg-void');
}

function startReturn(s) {
  target = s;
  $('return-sale').textContent = (s.number || s.time) + ' — ' + s.total;
  $('return-lines').replaceChildren(...s.lines.map((l) => {
    const div = document.createElement('div');
    const label = document.createElement('label');
    label.htmlFor = 'ret-' + l.line;
    label.textContent = T.return_qty + ': ' + l.name + ' (' + l.qty + ')';
    const input = document.createElement('input');
    input.id = 'ret-' + l.line;
    input.dataset.line = l.line;
    input.inputMode = 'decimal';
    input.className = 'ret-qty';
    const damaged = document.createElement('input');
    damaged.type = 'checkbox';
    damaged.id = 'ret-damaged-' + l.line;
    damaged.className = 'ret-damaged';
    const dl = document.createElement('label');
    dl.htmlFor = damaged.id;
    dl.className = 'check';
    dl.textContent = T.damaged + ': ' + l.name;
    div.append(label, input, damaged, dl);
    return div;
  }));
  for (const id of ['return-approver', 'return-pin']) $(id).value = '';
  say('', false, 'return-message');
  $('dlg-sales').close();
  openDialog('dlg-return');
}

function openShift() {
  const open = !!(state && state.shift);
  $('form-shift-open').hidden = open;
  $('form-shift-close').hidden = !open;
  for (const id of ['open-cashier', 'open-pin', 'close-counted', 'close-by', 'close-pin']) $(id).value = '';
  $('open-float').value = '0';
  say('', false, 'open-message');
  say('', false, 'close-message');
  openDialog('dlg-shift');
  $(open ? 'close-counted' : 'open-cashier').focus();
}

function openCash() {
  for (const id of ['cash-amount', 'cash-reason', 'cash-approver', 'cash-pin']) $(id).value = '';
  say('', false, 'cash-message');
  openDialog('dlg-cash');
}

function openDrawerManual() {
  const shown = (state && state.shown) || {};
  $('drawer-sale').value = shown.sale_id || '';
  say('', false, 'drawer-message');
  openDialog('dlg-drawer');
  $('drawer-sale').focus();
}

async function openX() {
  openDialog('dlg-x');
  try { $('x-text').textContent = (await get('x-report')).z; } catch (e) { $('x-text').textContent = e.message; }
}

function onSubmit(id, f) {
  $(id).addEventListener('submit', (e) => { e.preventDefault(); f(); });
}

function setup() {
  onSubmit('entry', async () => {
    const entry = $('item').value;
    if (!entry.trim()) return;
    const s = await act(() => post('add', { entry }));
    if (s) $('item').value = '';
    $('item').focus();
  });
  onSubmit('form-pay', async () => {
    const s = await act(() => post('pay', {
      cash: $('pay-cash').value,
      card: $('pay-card').value,
      card_ref: $('pay-card-ref').value,
      transfer: $('pay-transfer').value,
      transfer_ref: $('pay-transfer-ref').value,
      fiado: $('pay-fiado').value,
      customer: $('pay-customer').value,
      approver: $('pay-approver').value,
      pin: $('pay-pin').value,
      document: $('pay-document').value,
      buyer_tax_id: $('pay-buyer-id').value,
      buyer_name: $('pay-buyer-name').value,
    }), 'pay-message');
    if (s) { closeDialogs(); say(s.shown ? s.shown.text : '', true); }
  });
  onSubmit('form-price', async () => {
    const s = await act(() => post('price', { line: priceLine.id, price: $('price-new').value }), 'price-message');
    if (s) closeDialogs();
  });
  onSubmit('form-discount', async () => {
    const body = { amount: $('discount-amount').value };
    if (discountLine) body.line = discountLine.id;
    const s = await act(() => post('discount', body), 'discount-message');
    if (s) closeDialogs();
  });
  onSubmit('form-customer', async () => {
    const s = await act(() => post('customer', {
      name: $('cust-name').value, phone: $('cust-phone').value,
      tax_id: $('cust-tax-id').value, credit_limit: $('cust-limit').value,
    }), 'customers-message');
    if (s) {
      for (const id of ['cust-name', 'cust-phone', 'cust-tax-id']) $(id).value = '';
      $('cust-limit').value = '0';
      await loadCustomers();
      say(s.shown ? s.shown.text : '', true, 'customers-message');
    }
  });
  onSubmit('form-customer-edit', async () => {
    const s = await act(() => post('customer-edit', {
      customer: editCustomer.id, name: $('edit-name').value, phone: $('edit-phone').value,
      tax_id: $('edit-tax-id').value, credit_limit: $('edit-limit').value,
    }), 'customer-edit-message');
    if (s) { closeDialogs(); say(s.shown ? s.shown.text : '', true); }
  });
  onSubmit('form-debt', async () => {
    const s = await act(() => post('debt-pay', {
      customer: debtCustomer.id, amount: $('debt-amount').value, method: $('debt-method').value,
    }), 'debt-message');
    if (s) { closeDialogs(); say(s.shown ? s.shown.text : '', true); }
  });
  onSubmit('form-shift-open', async () => {
    const s = await act(() => post('shift-open', {
      cashier: $('open-cashier').value, pin: $('open-pin').value, float: $('open-float').value,
    }), 'open-message');
    if (s) { closeDialogs(); say(s.shown ? s.shown.text : '', true); }
  });
  onSubmit('form-shift-close', async () => {
    const s = await act(() => post('shift-close', {
      counted: $('close-counted').value, by: $('close-by').value, pin: $('close-pin').value,
    }), 'close-message');
    if (s) { closeDialogs(); say(s.shown ? s.shown.text : '', true); }
  });
  onSubmit('form-void', async () => {
    const s = await act(() => post('void', {
      sale: target.sale_id, reason: $('void-reason').value,
      approver: $('void-approver').value, pin: $('void-pin').value,
    }), 'void-message');
    if (s) { closeDialogs(); say(s.shown ? s.shown.text : '', true); }
  });
  onSubmit('form-return', async () => {
    const lines = [...document.querySelectorAll('#return-lines input.ret-qty')]
      .filter((i) => i.value.trim() !== '')
      .map((i) => ({
        line: parseInt(i.dataset.line, 10), qty: i.value,
        damaged: $('ret-damaged-' + i.dataset.line).checked,
      }));
    const s = await act(() => post('return', {
      sale: target.sale_id, lines, refund: $('return-refund').value,
      approver: $('return-approver').value, pin: $('return-pin').value,
    }), 'return-message');
    if (s) { closeDialogs(); say(s.shown ? s.shown.text : '', true); }
  });
  onSubmit('form-drawer', async () => {
    const s = await act(() => post('drawer-manual', { sale: $('drawer-sale').value }), 'drawer-message');
    if (s) { closeDialogs(); say(s.shown ? s.shown.text : '', true); }
  });
  onSubmit('form-cash', async () => {
    const s = await act(() => post('cash', {
      kind: $('cash-kind').value, amount: $('cash-amount').value, reason: $('cash-reason').value,
      approver: $('cash-approver').value, pin: $('cash-pin').value,
    }), 'cash-message');
    if (s) { closeDialogs(); say(s.shown ? s.shown.text : '', true); }
  });
  for (const id of ['pay-cash', 'pay-card', 'pay-fiado', 'pay-transfer']) $(id).addEventListener('input', preview);
  for (const b of document.querySelectorAll('dialog .cancel')) b.addEventListener('click', closeDialogs);
  for (const d of document.querySelectorAll('dialog')) d.addEventListener('close', focusItem);
  $('btn-pay').addEventListener('click', openPay);
  $('btn-sales').addEventListener('click', openSales);
  $('btn-discount').addEventListener('click', () => startDiscount(null));
  $('btn-customers').addEventListener('click', openCustomers);
  $('btn-print-now').addEventListener('click', () => act(() => post('print-now', {})));
  $('btn-cash').addEventListener('click', openCash);
  $('btn-drawer-manual').addEventListener('click', openDrawerManual);
  $('btn-shift').addEventListener('click', openShift);
  $('btn-x').addEventListener('click', openX);
  $('btn-clear').addEventListener('click', () => act(() => post('clear', {})));
  document.addEventListener('keydown', (e) => {
    const lastLine = () => startPrice(state && state.cart.lines[state.cart.lines.length - 1]);
    const keys = { F2: openCustomers, F5: () => startDiscount(null), F4: openPay, F6: lastLine, F7: openSales, F8: openCash, F9: openShift, F10: () => act(() => post('clear', {})) };
    const f = keys[e.key];
    if (f && !anyDialog()) { e.preventDefault(); f(); }
  });
  refresh();
  setInterval(() => { if (!busy) refresh(); }, 2000);
}

setup();
