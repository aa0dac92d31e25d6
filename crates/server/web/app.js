// uma's web page: chat, the server's memory and load, and "will it fit?". It calls only uma's
// own public API on this origin (/v1/models, /v1/chat/completions, /health, /v1/plan), sends the
// API key when the server asks for one, and keeps conversations in this browser's localStorage.
// Model and user text is only ever set as textContent (or rendered by markdown.js, which builds
// nodes the same way): nothing here parses HTML.

import { copyButton, renderMarkdown } from './markdown.js';

const STORAGE = {
  key: 'uma.apiKey',
  conversations: 'uma.conversations',
  current: 'uma.currentConversation',
  settings: 'uma.settings',
};
const MAX_CONVERSATIONS = 200;
const HEALTH_INTERVAL_MS = 2000;
const MODELS_INTERVAL_MS = 10000;

// ---------------------------------------------------------------------------------------------
// Small helpers

const $ = (selector) => document.querySelector(selector);

function el(tag, options = {}, ...children) {
  const element = document.createElement(tag);
  if (options.className) element.className = options.className;
  if (options.text !== undefined) element.textContent = options.text;
  if (options.title) element.title = options.title;
  if (options.type) element.type = options.type;
  if (options.dataset) Object.assign(element.dataset, options.dataset);
  if (options.onClick) element.addEventListener('click', options.onClick);
  for (const child of children) {
    if (child !== null && child !== undefined) element.append(child);
  }
  return element;
}

function bytes(n) {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let value = Number(n) || 0;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(2)} ${units[unit]}`;
}

function grouped(n) {
  return Math.round(Number(n) || 0).toLocaleString('en-US');
}

function rate(tokensPerSecond) {
  return tokensPerSecond >= 100 ? `${grouped(tokensPerSecond)} tok/s` :
    `${tokensPerSecond.toFixed(1)} tok/s`;
}

function seconds(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

function readJson(key, fallback) {
  try {
    const value = JSON.parse(localStorage.getItem(key));
    return value === null ? fallback : value;
  } catch {
    return fallback;
  }
}

function writeJson(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
    return true;
  } catch {
    showChatError('This browser refused to store the conversation (storage full?).');
    return false;
  }
}

function newId() {
  return Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
}

function download(name, value) {
  const blob = new Blob([JSON.stringify(value, null, 2)], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const a = el('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---------------------------------------------------------------------------------------------
// The API, with the key when the server asks for one

let keyPrompt = null;

function askForKey(refused) {
  if (keyPrompt) return keyPrompt;
  const dialog = $('#key-dialog');
  $('#key-refused').hidden = !refused;
  $('#key-input').value = '';
  keyPrompt = new Promise((resolve) => {
    const form = $('#key-form');
    const submit = (event) => {
      event.preventDefault();
      const key = $('#key-input').value.trim();
      if (!key) return;
      try {
        localStorage.setItem(STORAGE.key, key);
      } catch {
        sessionStorage.setItem(STORAGE.key, key);
      }
      form.removeEventListener('submit', submit);
      dialog.close();
      keyPrompt = null;
      updateForgetKey();
      resolve();
    };
    form.addEventListener('submit', submit);
    // The key is needed: Esc must not leave the page without one.
    dialog.addEventListener('cancel', (event) => event.preventDefault(), { once: true });
    dialog.showModal();
    $('#key-input').focus();
  });
  return keyPrompt;
}

function storedKey() {
  return localStorage.getItem(STORAGE.key) || sessionStorage.getItem(STORAGE.key);
}

function updateForgetKey() {
  $('#forget-key').hidden = !storedKey();
}

// fetch() on this origin with the key; a 401 asks for the key and tries again.
async function api(path, options = {}) {
  for (;;) {
    const headers = new Headers(options.headers || {});
    const key = storedKey();
    if (key) headers.set('Authorization', `Bearer ${key}`);
    if (options.body !== undefined) headers.set('Content-Type', 'application/json');
    const response = await fetch(path, {
      method: options.method || 'GET',
      body: options.body,
      headers,
      signal: options.signal,
      cache: 'no-store',
      credentials: 'same-origin',
      referrerPolicy: 'no-referrer',
    });
    if (response.status !== 401) return response;
    await askForKey(Boolean(key));
  }
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    const message = body && body.error && (body.error.message || body.error);
    if (message) return `${response.status}: ${message}`;
  } catch {
    // not JSON
  }
  return `HTTP ${response.status}`;
}

// ---------------------------------------------------------------------------------------------
// Models

let models = [];

async function loadModels() {
  try {
    const response = await api('/v1/models');
    if (!response.ok) throw new Error(await errorMessage(response));
    const body = await response.json();
    models = Array.isArray(body.data) ? body.data : [];
  } catch (error) {
    showChatError(`Cannot list the models: ${error.message}`);
    return;
  }
  const select = $('#model');
  const wanted = select.value || (currentConversation() && currentConversation().model) ||
    settings.model;
  select.replaceChildren(...models.map((model) => {
    const option = el('option', {
      text: `${model.id} · ${model.status || 'available'} · ${bytes(model.memory_bytes)}`,
    });
    option.value = model.id;
    option.dataset.status = model.status || '';
    return option;
  }));
  if (models.some((model) => model.id === wanted)) select.value = wanted;
}

// ---------------------------------------------------------------------------------------------
// Settings and conversations

const settings = Object.assign({ model: '', temperature: '', top_p: '', top_k: '', max_tokens: '', seed: '' },
  readJson(STORAGE.settings, {}));
const SETTING_INPUTS = {
  temperature: '#temperature', top_p: '#top-p', top_k: '#top-k', max_tokens: '#max-tokens',
  seed: '#seed',
};

function loadSettings() {
  for (const [name, selector] of Object.entries(SETTING_INPUTS)) {
    $(selector).value = settings[name] ?? '';
    $(selector).addEventListener('change', () => {
      settings[name] = $(selector).value;
      writeJson(STORAGE.settings, settings);
    });
  }
}

let conversations = readJson(STORAGE.conversations, []);
if (!Array.isArray(conversations)) conversations = [];
let currentId = localStorage.getItem(STORAGE.current);

function currentConversation() {
  return conversations.find((conversation) => conversation.id === currentId) || null;
}

function saveConversations() {
  conversations.sort((a, b) => b.updated - a.updated);
  conversations = conversations.slice(0, MAX_CONVERSATIONS);
  writeJson(STORAGE.conversations, conversations);
  if (currentId) localStorage.setItem(STORAGE.current, currentId);
}

function startConversation() {
  const conversation = {
    id: newId(),
    title: 'New chat',
    created: Date.now(),
    updated: Date.now(),
    model: $('#model').value,
    system: '',
    messages: [],
  };
  conversations.unshift(conversation);
  currentId = conversation.id;
  return conversation;
}

function selectConversation(id) {
  if (streaming) stopStreaming();
  currentId = id;
  localStorage.setItem(STORAGE.current, id || '');
  const conversation = currentConversation();
  $('#system-prompt').value = conversation ? conversation.system || '' : '';
  if (conversation && models.some((model) => model.id === conversation.model)) {
    $('#model').value = conversation.model;
  }
  renderConversations();
  renderMessages();
  if (window.matchMedia('(max-width: 760px)').matches) document.body.classList.remove('sidebar-open');
}

function renderConversations() {
  const list = $('#conversations');
  list.replaceChildren(...conversations.map((conversation) => {
    const item = el('li', {
      className: conversation.id === currentId ? 'conversation current' : 'conversation',
      dataset: { id: conversation.id },
    });
    const open = el('button', {
      className: 'conversation-title', type: 'button', text: conversation.title,
      title: conversation.title, onClick: () => selectConversation(conversation.id),
    });
    const rename = el('button', {
      className: 'small', type: 'button', text: 'Rename', title: 'Rename',
      onClick: () => {
        const input = el('input', { className: 'rename-input' });
        input.value = conversation.title;
        input.maxLength = 200;
        const finish = (save) => {
          if (save && input.value.trim()) {
            conversation.title = input.value.trim();
            conversation.updated = Date.now();
            saveConversations();
          }
          renderConversations();
        };
        input.addEventListener('keydown', (event) => {
          if (event.key === 'Enter') finish(true);
          if (event.key === 'Escape') {
            event.stopPropagation();
            finish(false);
          }
        });
        input.addEventListener('blur', () => finish(true));
        open.replaceWith(input);
        input.focus();
        input.select();
      },
    });
    const remove = el('button', {
      className: 'small danger-text', type: 'button', text: 'Delete', title: 'Delete',
    });
    remove.addEventListener('click', () => {
      if (remove.dataset.confirm !== 'yes') {
        remove.dataset.confirm = 'yes';
        remove.textContent = 'Sure?';
        setTimeout(() => {
          remove.dataset.confirm = '';
          remove.textContent = 'Delete';
        }, 3000);
        return;
      }
      conversations = conversations.filter((c) => c.id !== conversation.id);
      if (currentId === conversation.id) currentId = null;
      saveConversations();
      selectConversation(currentId);
    });
    item.append(open, el('span', { className: 'conversation-actions' }, rename, remove));
    return item;
  }));
}

// ---------------------------------------------------------------------------------------------
// Messages

function statsLine(stats) {
  if (!stats) return null;
  const parts = [];
  if (stats.prompt_tokens !== undefined) {
    const cached = stats.cached_tokens ? ` (${grouped(stats.cached_tokens)} cached)` : '';
    parts.push(`prompt ${grouped(stats.prompt_tokens)} tokens${cached}`);
  }
  if (stats.completion_tokens !== undefined) {
    parts.push(`${grouped(stats.completion_tokens)} generated`);
  }
  if (stats.ttft_ms !== undefined) parts.push(`first token ${seconds(stats.ttft_ms)}`);
  if (stats.tokens_per_second !== undefined) parts.push(rate(stats.tokens_per_second));
  if (stats.stopped) parts.push('stopped');
  const line = el('div', { className: 'stats', text: parts.join(' · ') });
  for (const [name, value] of Object.entries(stats)) {
    if (typeof value === 'number') line.dataset[name.replace(/_(\w)/g, (_, c) => c.toUpperCase())] = String(value);
  }
  return line;
}

function messageView(conversation, index) {
  const message = conversation.messages[index];
  const wrapper = el('article', { className: `message ${message.role}`, dataset: { index: String(index) } });
  const body = el('div', { className: 'message-body' });
  if (message.role === 'assistant') {
    if (message.reasoning) {
      const details = el('details', { className: 'reasoning' });
      details.open = Boolean(message.reasoningOpen);
      details.addEventListener('toggle', () => { message.reasoningOpen = details.open; });
      const text = el('div', { className: 'reasoning-text' });
      renderMarkdown(message.reasoning, text);
      details.append(el('summary', { text: message.content ? 'Reasoning' : 'Reasoning…' }), text);
      body.append(details);
    }
    const content = el('div', { className: 'content markdown' });
    renderMarkdown(message.content || '', content);
    body.append(content);
    if (message.error) body.append(el('p', { className: 'error', text: message.error }));
  } else {
    body.append(el('div', { className: 'content plain', text: message.content }));
  }
  wrapper.append(body);
  const actions = el('div', { className: 'message-actions' });
  const last = index === conversation.messages.length - 1;
  if (message.role === 'assistant') {
    actions.append(copyButton(() => message.content || ''));
    if (last && !streaming) {
      actions.append(el('button', {
        type: 'button', className: 'small regenerate', text: 'Regenerate',
        onClick: () => regenerate(),
      }));
    }
    const stats = statsLine(message.stats);
    if (stats) wrapper.append(stats);
  } else if (!streaming) {
    actions.append(el('button', {
      type: 'button', className: 'small edit', text: 'Edit',
      onClick: () => editMessage(wrapper, conversation, index),
    }));
  }
  wrapper.append(actions);
  return wrapper;
}

function renderMessages() {
  const container = $('#messages');
  const conversation = currentConversation();
  const views = conversation ? conversation.messages.map((_, i) => messageView(conversation, i)) : [];
  $('#empty-chat').hidden = views.length > 0;
  container.replaceChildren($('#empty-chat'), ...views);
  container.scrollTop = container.scrollHeight;
}

// Re-renders only the last message (while it streams), at most once a frame.
let renderQueued = false;
function renderLastMessage() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    const conversation = currentConversation();
    const container = $('#messages');
    if (!conversation || !conversation.messages.length) return;
    const index = conversation.messages.length - 1;
    const nearBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 80;
    const existing = container.querySelector(`article[data-index="${index}"]`);
    const view = messageView(conversation, index);
    if (existing) existing.replaceWith(view);
    else container.append(view);
    if (nearBottom) container.scrollTop = container.scrollHeight;
  });
}

function editMessage(wrapper, conversation, index) {
  const message = conversation.messages[index];
  const area = el('textarea', { className: 'edit-area' });
  area.value = message.content;
  area.rows = Math.min(12, Math.max(2, message.content.split('\n').length));
  const save = el('button', { type: 'button', className: 'primary small', text: 'Send' });
  const cancel = el('button', { type: 'button', className: 'small', text: 'Cancel', onClick: () => renderMessages() });
  const resend = () => {
    const text = area.value.trim();
    if (!text || streaming) return;
    conversation.messages = conversation.messages.slice(0, index);
    conversation.messages.push({ role: 'user', content: text });
    conversation.updated = Date.now();
    respond(conversation);
  };
  save.addEventListener('click', resend);
  area.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      resend();
    } else if (event.key === 'Escape') {
      event.stopPropagation();
      renderMessages();
    }
  });
  wrapper.replaceChildren(area, el('div', { className: 'message-actions' }, save, cancel));
  area.focus();
}

// ---------------------------------------------------------------------------------------------
// Streaming a chat completion

let streaming = null; // { controller, message }

function showChatError(text) {
  const error = $('#chat-error');
  error.textContent = text || '';
  error.hidden = !text;
}

function setStreaming(state) {
  streaming = state;
  $('#send').hidden = Boolean(state);
  $('#stop').hidden = !state;
}

function stopStreaming() {
  if (streaming) streaming.controller.abort();
}

function numberSetting(name, parse) {
  const text = String(settings[name] ?? '').trim();
  if (text === '') return undefined;
  const value = parse(text);
  return Number.isFinite(value) ? value : undefined;
}

function requestBody(conversation, model) {
  const messages = [];
  if (conversation.system && conversation.system.trim()) {
    messages.push({ role: 'system', content: conversation.system });
  }
  for (const message of conversation.messages) {
    if (message.role === 'user' || (message.role === 'assistant' && message.content)) {
      messages.push({ role: message.role, content: message.content });
    }
  }
  const body = { model, messages, stream: true, stream_options: { include_usage: true } };
  const fields = {
    temperature: numberSetting('temperature', parseFloat),
    top_p: numberSetting('top_p', parseFloat),
    top_k: numberSetting('top_k', (t) => parseInt(t, 10)),
    max_tokens: numberSetting('max_tokens', (t) => parseInt(t, 10)),
    seed: numberSetting('seed', (t) => parseInt(t, 10)),
  };
  for (const [name, value] of Object.entries(fields)) {
    if (value !== undefined) body[name] = value;
  }
  return body;
}

// Calls `onEvent(json)` for each `data:` event of a server-sent event stream.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split('\n').filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart()).join('\n');
      if (!data) continue;
      if (data === '[DONE]') return;
      onEvent(JSON.parse(data));
    }
  }
}

async function respond(conversation) {
  const model = $('#model').value;
  if (!model) {
    showChatError('No model to answer: the server lists none.');
    return;
  }
  showChatError('');
  conversation.model = model;
  conversation.system = $('#system-prompt').value;
  const body = requestBody(conversation, model);
  const message = { role: 'assistant', content: '', reasoning: '', model };
  conversation.messages.push(message);
  conversation.updated = Date.now();
  saveConversations();
  renderConversations();
  const controller = new AbortController();
  setStreaming({ controller, message });
  renderMessages();
  const started = performance.now();
  let firstToken = null;
  let lastToken = null;
  let usage = null;
  let lastSave = started;
  try {
    const response = await api('/v1/chat/completions', {
      method: 'POST', body: JSON.stringify(body), signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    await readEvents(response, (chunk) => {
      if (chunk.error) throw new Error(chunk.error.message || 'the server failed the answer');
      if (chunk.usage) usage = chunk.usage;
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (!delta) return;
      const text = (delta.content || '') + (delta.reasoning_content || '');
      if (text) {
        const now = performance.now();
        if (firstToken === null) firstToken = now;
        lastToken = now;
      }
      if (delta.reasoning_content) message.reasoning += delta.reasoning_content;
      if (delta.content) message.content += delta.content;
      renderLastMessage();
      if (performance.now() - lastSave > 1000) {
        lastSave = performance.now();
        saveConversations();
      }
    });
  } catch (error) {
    if (error.name !== 'AbortError') message.error = `The answer failed: ${error.message}`;
  }
  const stopped = controller.signal.aborted;
  const stats = {};
  if (usage) {
    stats.prompt_tokens = usage.prompt_tokens;
    stats.cached_tokens = (usage.prompt_tokens_details && usage.prompt_tokens_details.cached_tokens) || 0;
    stats.completion_tokens = usage.completion_tokens;
  }
  if (firstToken !== null) {
    stats.ttft_ms = firstToken - started;
    const generated = usage ? usage.completion_tokens : null;
    const span = (lastToken - firstToken) / 1000;
    if (generated && generated > 1 && span > 0) stats.tokens_per_second = (generated - 1) / span;
  }
  if (stopped) stats.stopped = true;
  message.stats = stats;
  if (!message.reasoning) delete message.reasoning;
  if (conversation.title === 'New chat') {
    const first = conversation.messages.find((m) => m.role === 'user');
    if (first) conversation.title = first.content.replace(/\s+/g, ' ').slice(0, 60);
  }
  conversation.updated = Date.now();
  setStreaming(null);
  saveConversations();
  renderConversations();
  renderMessages();
  loadModels();
}

function send() {
  if (streaming) return;
  const prompt = $('#prompt');
  const text = prompt.value.trim();
  if (!text) return;
  const conversation = currentConversation() || startConversation();
  conversation.messages.push({ role: 'user', content: text });
  prompt.value = '';
  autosize(prompt);
  respond(conversation);
}

function regenerate() {
  const conversation = currentConversation();
  if (!conversation || streaming) return;
  while (conversation.messages.length && conversation.messages[conversation.messages.length - 1].role === 'assistant') {
    conversation.messages.pop();
  }
  if (conversation.messages.length) respond(conversation);
}

function autosize(area) {
  area.style.height = 'auto';
  area.style.height = `${Math.min(area.scrollHeight, 240)}px`;
}

// ---------------------------------------------------------------------------------------------
// Server view: /health, live

let healthTimer = null;

function segment(kind, bytesValue, total, label, model, caption) {
  const width = total > 0 ? (100 * bytesValue) / total : 0;
  const part = el('div', {
    className: `segment ${kind}`,
    title: `${label}: ${bytes(bytesValue)}`,
    dataset: { kind, bytes: String(bytesValue), model: model || '' },
  });
  part.style.width = `${Math.max(0, Math.min(100, width))}%`;
  // Named inside the bar where there is room for it.
  if (caption && width >= 12) part.append(el('span', { className: 'caption', text: caption }));
  return part;
}

function legendItem(kind, label, value) {
  return el('li', { className: 'legend-item' }, el('span', { className: `swatch ${kind}` }),
    el('span', { text: `${label} ${bytes(value)}` }));
}

function renderHealth(health) {
  const budget = health.memory_budget_bytes || 0;
  const held = health.memory_held_bytes || 0;
  const bar = $('#memory-bar');
  bar.dataset.budgetBytes = String(budget);
  bar.dataset.heldBytes = String(held);
  const parts = [];
  const legend = [];
  for (const model of health.models || []) {
    if (model.status === 'resident') {
      const kv = model.kv_cache_bytes || 0;
      const weights = Math.max(0, model.memory_bytes - kv);
      parts.push(segment('weights', weights, budget, `${model.model} weights and runtime`,
        model.model, model.model));
      parts.push(segment('kv', kv, budget, `${model.model} KV pool`, model.model));
      legend.push(legendItem('weights', `${model.model} weights and runtime`, weights));
      legend.push(legendItem('kv', `${model.model} KV pool`, kv));
    } else if (model.status === 'loading') {
      parts.push(segment('loading', model.memory_bytes, budget, `${model.model} loading`, model.model));
      legend.push(legendItem('loading', `${model.model} loading`, model.memory_bytes));
    }
  }
  const free = Math.max(0, budget - held);
  parts.push(segment('free', free, budget, 'free', '', `free ${bytes(free)}`));
  legend.push(legendItem('free', 'free', free));
  bar.replaceChildren(...parts);
  $('#memory-legend').replaceChildren(...legend);
  $('#server-status').textContent =
    `${health.status} · budget ${bytes(budget)} · held ${bytes(held)} · free ${bytes(free)}`;
  $('#server-status').dataset.status = health.status;

  const cards = (health.models || []).map((model) => {
    const card = el('div', { className: 'card', dataset: { model: model.model, status: model.status } });
    card.append(el('h3', { text: model.model }),
      el('p', { className: `badge ${model.status}`, text: model.status }));
    const rows = [['memory', bytes(model.memory_bytes)]];
    if (model.context_length) rows.push(['context', `${grouped(model.context_length)} tokens`]);
    const stats = model.stats;
    if (stats) {
      const hitRatio = stats.prefix_cache_queried_tokens > 0 ?
        stats.prefix_cache_hit_tokens / stats.prefix_cache_queried_tokens : 0;
      rows.push(['KV pool', bytes(model.kv_cache_bytes || 0)]);
      rows.push(['KV blocks', `${grouped(stats.kv_num_used_blocks)} used · ${grouped(stats.kv_num_cached_free_blocks)} cached · ${grouped(stats.kv_num_blocks)} in all`]);
      rows.push(['requests', `${stats.num_running} running · ${stats.num_waiting} queued`]);
      rows.push(['prefix cache hits', `${(100 * hitRatio).toFixed(1)}% of ${grouped(stats.prefix_cache_queried_tokens)} tokens`]);
      rows.push(['finished', `${grouped(stats.num_finished_requests)} · cancelled ${grouped(stats.num_cancelled_requests)} · preempted ${grouped(stats.num_preemptions)}`]);
      rows.push(['tokens', `${grouped(stats.num_prompt_tokens)} prompt · ${grouped(stats.num_generated_tokens)} generated`]);
      const kvBar = el('div', { className: 'bar small-bar', dataset: { blocks: String(stats.kv_num_blocks) } });
      const total = stats.kv_num_blocks || 0;
      kvBar.append(segment('kv', stats.kv_num_used_blocks, total, 'used blocks'),
        segment('cached', stats.kv_num_cached_free_blocks, total, 'cached blocks'));
      Object.assign(card.dataset, {
        running: String(stats.num_running), waiting: String(stats.num_waiting),
        usedBlocks: String(stats.kv_num_used_blocks), cachedBlocks: String(stats.kv_num_cached_free_blocks),
        hitRatio: String(hitRatio),
      });
      card.append(kvBar);
    }
    if (model.error) rows.push(['error', model.error]);
    const list = el('dl');
    for (const [name, value] of rows) list.append(el('dt', { text: name }), el('dd', { text: value }));
    card.append(list);
    return card;
  });
  $('#server-models').replaceChildren(...cards);
}

async function refreshHealth() {
  try {
    const response = await api('/health');
    const health = await response.json();
    renderHealth(health);
  } catch (error) {
    $('#server-status').textContent = `Cannot reach the server: ${error.message}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Plan view

const PRESETS = [
  { name: 'Llama 3.1 8B', params: '8.03B', layers: 32, hidden: 4096, heads: 32, kv: 8, vocab: 128256, trained: 131072 },
  { name: 'Llama 3.1 70B', params: '70.6B', layers: 80, hidden: 8192, heads: 64, kv: 8, vocab: 128256, trained: 131072 },
  { name: 'Qwen2.5 7B', params: '7.62B', layers: 28, hidden: 3584, heads: 28, kv: 4, vocab: 152064, trained: 32768 },
  { name: 'Qwen2.5 32B', params: '32.8B', layers: 64, hidden: 5120, heads: 40, kv: 8, vocab: 152064, trained: 32768 },
  { name: 'Mistral 7B', params: '7.24B', layers: 32, hidden: 4096, heads: 32, kv: 8, vocab: 32768, trained: 32768 },
];

let planOptions = null;

// "7B" → 7e9, "1.5b", "500M", "2k", or a plain number (as `uma plan --params`).
export function parseCount(text) {
  const match = /^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBtT]?)\s*$/.exec(text || '');
  if (!match) return null;
  const multiplier = { '': 1, k: 1e3, m: 1e6, b: 1e9, t: 1e12 }[match[2].toLowerCase()];
  const value = Math.round(parseFloat(match[1]) * multiplier);
  return Number.isSafeInteger(value) && value >= 1 ? value : null;
}

async function loadPlanOptions() {
  if (planOptions) return;
  const response = await api('/v1/plan');
  if (!response.ok) throw new Error(await errorMessage(response));
  planOptions = await response.json();
  $('#plan-quant').replaceChildren(...planOptions.quantizations.map((name) => {
    const option = el('option', { text: name });
    option.value = name;
    return option;
  }));
  $('#plan-quant').value = planOptions.defaults.quantization;
  const stored = planOptions.stored_models || [];
  $('#plan-model').replaceChildren(...stored.map((model) => {
    const option = el('option', { text: `${model.name} · ${bytes(model.size)}` });
    option.value = model.name;
    return option;
  }));
  $('#plan-no-models').hidden = stored.length > 0;
  if (stored.length) {
    $('#plan-source-stored').checked = true;
    planSourceChanged();
  }
  const machines = [{ name: 'this', label: 'this machine', detail: planOptions.this_machine ? bytes(planOptions.this_machine.memory_bytes) : '' }]
    .concat(planOptions.machines.map((machine) => ({
      name: machine.name, label: machine.name,
      detail: `${machine.memory_gib} GiB · ${machine.bandwidth_gb_per_s} GB/s`,
    })));
  $('#plan-machines').replaceChildren(...machines.map((machine) => {
    const box = el('input', { type: 'checkbox' });
    box.value = machine.name;
    box.checked = true;
    box.name = 'plan-machine';
    box.addEventListener('change', countMachines);
    return el('label', { className: 'machine', title: machine.detail }, box,
      el('span', { text: ` ${machine.label}` }), el('small', { text: machine.detail }));
  }));
  countMachines();
}

function countMachines() {
  const boxes = [...document.querySelectorAll('input[name="plan-machine"]')];
  const checked = boxes.filter((box) => box.checked).length;
  $('#plan-machines-summary').textContent = `Machines: ${checked} of ${boxes.length}`;
}

function checkMachines(checked) {
  for (const box of document.querySelectorAll('input[name="plan-machine"]')) box.checked = checked;
  countMachines();
}

function planSourceChanged() {
  const stored = $('#plan-source-stored').checked;
  $('#plan-stored').hidden = !stored;
  $('#plan-described').hidden = stored;
  for (const input of $('#plan-described').querySelectorAll('input')) input.disabled = stored;
}

function applyPreset() {
  const preset = PRESETS.find((p) => p.name === $('#plan-preset').value);
  if (!preset) return;
  $('#plan-params').value = preset.params;
  $('#plan-layers').value = preset.layers;
  $('#plan-hidden').value = preset.hidden;
  $('#plan-heads').value = preset.heads;
  $('#plan-kv-heads').value = preset.kv;
  $('#plan-vocab').value = preset.vocab;
  $('#plan-trained').value = preset.trained;
}

function integerField(selector, name, required) {
  const text = $(selector).value.trim();
  if (text === '') {
    if (required) throw new Error(`${name} is needed`);
    return undefined;
  }
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} must be a whole number of at least 1`);
  return value;
}

function planQuery() {
  const query = {};
  if ($('#plan-source-stored').checked) {
    if (!$('#plan-model').value) throw new Error('no stored model to plan');
    query.model = $('#plan-model').value;
  } else {
    const params = parseCount($('#plan-params').value);
    if (params === null) throw new Error('Parameters: a count such as 7B, 1.5B or 500M');
    query.description = {
      num_parameters: params,
      num_hidden_layers: integerField('#plan-layers', 'Layers', true),
      hidden_size: integerField('#plan-hidden', 'Hidden size', true),
      num_attention_heads: integerField('#plan-heads', 'Attention heads', true),
      num_key_value_heads: integerField('#plan-kv-heads', 'KV heads', false),
      vocab_size: integerField('#plan-vocab', 'Vocabulary', true),
      max_position_embeddings: integerField('#plan-trained', 'Trained context', false),
      quantization: $('#plan-quant').value,
    };
  }
  query.context_length = integerField('#plan-ctx', 'Context', false);
  query.num_sequences = integerField('#plan-seqs', 'Sequences', false);
  query.kv_cache_type = $('#plan-kv').value;
  query.machines = [...document.querySelectorAll('input[name="plan-machine"]:checked')].map((box) => box.value);
  if (!query.machines.length) throw new Error('pick at least one machine');
  const bandwidth = $('#plan-bandwidth').value.trim();
  if (bandwidth !== '') {
    const value = Number(bandwidth);
    if (!(value > 0)) throw new Error("This machine's bandwidth must be a positive number");
    query.bandwidth_gb_per_s = value;
  }
  return query;
}

function planView(plan) {
  const memory = plan.memory;
  const parts = memory.breakdown;
  const speed = plan.speed;
  const request = memory.request;
  const scale = Math.max(memory.budget_bytes, memory.needed_bytes) || 1;
  const machineName = plan.machine.name === 'this' ? 'this machine' : plan.machine.name;
  const row = el('div', {
    className: `plan ${memory.verdict}`,
    dataset: {
      machine: plan.machine.name,
      verdict: memory.verdict,
      neededBytes: String(memory.needed_bytes),
      usableBytes: String(memory.usable_bytes),
      budgetBytes: String(memory.budget_bytes),
      weightsBytes: String(parts.weights_bytes),
      kvBytes: String(parts.kv_cache_bytes),
      scratchBytes: String(parts.compute_scratch_bytes),
      overheadBytes: String(parts.runtime_overhead_bytes),
      maxContext: String(memory.max_context_length),
      decodeEmpty: String(speed.decode_empty_context.tokens_per_second),
      decode: String(speed.decode_full_context.tokens_per_second),
      aggregate: String(speed.aggregate_decode.tokens_per_second),
      prefill: String(speed.prefill.tokens_per_second),
    },
  });
  const verdictText = { fits: 'fits', fits_without_headroom: 'fits only without headroom', does_not_fit: 'does not fit' }[memory.verdict] || memory.verdict;
  row.append(el('div', { className: 'plan-head' },
    el('h3', { text: machineName }),
    el('span', { className: `badge ${memory.verdict}`, text: verdictText }),
    el('small', { text: plan.machine.description || '' })));
  const bar = el('div', { className: 'bar plan-bar', role: 'img' });
  bar.setAttribute('aria-label', `${bytes(memory.needed_bytes)} needed of ${bytes(memory.usable_bytes)} usable`);
  bar.append(
    segment('weights', parts.weights_bytes, scale, 'weights', '', `weights ${bytes(parts.weights_bytes)}`),
    segment('kv', parts.kv_cache_bytes, scale, 'KV cache'),
    segment('scratch', parts.compute_scratch_bytes, scale, 'compute scratch'),
    segment('overhead', parts.runtime_overhead_bytes, scale, 'runtime overhead'));
  const usable = el('div', { className: 'marker usable', title: `usable: ${bytes(memory.usable_bytes)} (25% of the budget kept free above it)` });
  usable.style.left = `${(100 * memory.usable_bytes) / scale}%`;
  const budget = el('div', { className: 'marker budget', title: `budget: ${bytes(memory.budget_bytes)} (memory − OS reserve)` });
  budget.style.left = `${Math.min(100, (100 * memory.budget_bytes) / scale)}%`;
  bar.append(usable, budget);
  row.append(bar);
  const facts = [
    ['needs', `${bytes(memory.needed_bytes)} of ${bytes(memory.usable_bytes)} usable (budget ${bytes(memory.budget_bytes)}, 25% headroom ${bytes(memory.headroom_bytes)})`, 'needed'],
    ['memory', `weights ${bytes(parts.weights_bytes)} · KV cache ${bytes(parts.kv_cache_bytes)} · scratch ${bytes(parts.compute_scratch_bytes)} · overhead ${bytes(parts.runtime_overhead_bytes)}`, 'breakdown'],
    ['longest context', memory.max_context_length ? `${grouped(memory.max_context_length)} tokens per sequence` : 'none: not even one token fits', 'max-context'],
    ['decode', `${rate(speed.decode_empty_context.tokens_per_second)} with an empty context, ${rate(speed.decode_full_context.tokens_per_second)} at ${grouped(request.context_length)} tokens (${speed.decode_full_context.bound} bound)`, 'decode'],
  ];
  if (request.num_sequences > 1) {
    facts.push([`${request.num_sequences} sequences`, `${rate(speed.aggregate_decode.tokens_per_second)} in all (${speed.aggregate_decode.bound} bound)`, 'aggregate']);
  }
  facts.push(['prefill', `${rate(speed.prefill.tokens_per_second)} for a ${grouped(request.context_length)}-token prompt (${speed.prefill.bound} bound)`, 'prefill']);
  if (speed.engine && speed.engine.name) facts.push(['engine', speed.engine.name, 'engine']);
  const list = el('dl', { className: 'plan-facts' });
  for (const [name, value, key] of facts) {
    list.append(el('dt', { text: name }), el('dd', { text: value, dataset: { fact: key } }));
  }
  row.append(list);
  return row;
}

async function runPlan(event) {
  event.preventDefault();
  const error = $('#plan-error');
  error.hidden = true;
  let query;
  try {
    query = planQuery();
  } catch (problem) {
    error.textContent = problem.message;
    error.hidden = false;
    return;
  }
  $('#plan-busy').hidden = false;
  $('#plan-run').disabled = true;
  try {
    const response = await api('/v1/plan', { method: 'POST', body: JSON.stringify(query) });
    if (!response.ok) throw new Error(await errorMessage(response));
    const report = await response.json();
    const results = $('#plan-results');
    const first = report.plans[0];
    const model = first ? first.model : null;
    const header = model ? el('p', {
      className: 'plan-model',
      text: `${model.name} · ${model.quantization} · ${grouped(first.memory.request.context_length)} tokens × ${first.memory.request.num_sequences} sequence(s) · KV cache ${first.memory.request.kv_cache_type}`,
    }) : null;
    const key = (kind, label) => el('li', { className: 'legend-item' },
      el('span', { className: `swatch ${kind}` }), el('span', { text: label }));
    const legend = el('ul', { className: 'legend' }, key('weights', 'weights'),
      key('kv', 'KV cache'), key('scratch', 'compute scratch'), key('overhead', 'runtime overhead'),
      key('usable-line', 'usable: 75% of the budget (the 25% headroom lies above)'),
      key('budget-line', 'budget: memory − OS reserve'));
    results.replaceChildren(...[header, legend, ...report.plans.map(planView)].filter(Boolean));
    if (report.bandwidth_probe) {
      results.append(el('p', { className: 'note', text: `This machine's bandwidth: ${report.bandwidth_probe.gb_per_s.toFixed(1)} GB/s, measured.` }));
    }
  } catch (problem) {
    error.textContent = problem.message;
    error.hidden = false;
  } finally {
    $('#plan-busy').hidden = true;
    $('#plan-run').disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Views and start-up

function showView(name) {
  for (const tab of document.querySelectorAll('.tab')) {
    tab.setAttribute('aria-selected', String(tab.dataset.view === name));
  }
  for (const view of document.querySelectorAll('.view')) view.hidden = view.dataset.view !== name;
  document.body.dataset.view = name;
  clearInterval(healthTimer);
  healthTimer = null;
  if (name === 'server') {
    refreshHealth();
    healthTimer = setInterval(() => {
      if (document.visibilityState === 'visible') refreshHealth();
    }, HEALTH_INTERVAL_MS);
  } else if (name === 'plan') {
    loadPlanOptions().catch((problem) => {
      $('#plan-error').textContent = `Cannot load the catalogue: ${problem.message}`;
      $('#plan-error').hidden = false;
    });
  }
  if (window.location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
}

function start() {
  loadSettings();
  for (const tab of document.querySelectorAll('.tab')) {
    tab.addEventListener('click', () => showView(tab.dataset.view));
  }
  $('#toggle-sidebar').addEventListener('click', () => document.body.classList.toggle('sidebar-open'));
  $('#new-chat').addEventListener('click', () => {
    if (streaming) stopStreaming();
    startConversation();
    saveConversations();
    selectConversation(currentId);
    $('#prompt').focus();
  });
  $('#export-all').addEventListener('click', () => download('uma-conversations.json', conversations));
  $('#export-chat').addEventListener('click', () => {
    const conversation = currentConversation();
    if (conversation) download(`uma-chat-${conversation.id}.json`, conversation);
  });
  $('#forget-key').addEventListener('click', () => {
    localStorage.removeItem(STORAGE.key);
    sessionStorage.removeItem(STORAGE.key);
    updateForgetKey();
  });
  $('#system-prompt').addEventListener('change', () => {
    const conversation = currentConversation();
    if (conversation) {
      conversation.system = $('#system-prompt').value;
      saveConversations();
    }
  });
  $('#model').addEventListener('change', () => {
    settings.model = $('#model').value;
    writeJson(STORAGE.settings, settings);
  });
  const prompt = $('#prompt');
  prompt.addEventListener('input', () => autosize(prompt));
  prompt.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  $('#composer').addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });
  $('#stop').addEventListener('click', stopStreaming);
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && streaming) {
      event.preventDefault();
      stopStreaming();
    }
  });
  for (const radio of document.querySelectorAll('input[name="plan-source"]')) {
    radio.addEventListener('change', planSourceChanged);
  }
  $('#plan-preset').append(...PRESETS.map((preset) => {
    const option = el('option', { text: preset.name });
    option.value = preset.name;
    return option;
  }));
  $('#plan-preset').addEventListener('change', applyPreset);
  $('#plan-preset').value = PRESETS[0].name;
  applyPreset();
  planSourceChanged();
  $('#plan-form').addEventListener('submit', runPlan);
  $('#plan-all').addEventListener('click', () => checkMachines(true));
  $('#plan-none').addEventListener('click', () => checkMachines(false));
  updateForgetKey();
  renderConversations();
  selectConversation(currentId && currentConversation() ? currentId : null);
  const view = window.location.hash.slice(1);
  showView(['chat', 'server', 'plan'].includes(view) ? view : 'chat');
  loadModels().then(() => {
    document.body.dataset.ready = 'true';
  });
  setInterval(() => {
    if (document.visibilityState === 'visible' && !streaming && !keyPrompt) loadModels();
  }, MODELS_INTERVAL_MS);
}

start();
