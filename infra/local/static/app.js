// The Slack-like page of `trainbot local`: one channel of the Slack stand-in and the current
// user's direct messages with the app (the admins' approval cards), live.
// State comes from /page/state, then changes from a long-poll of /page/events (the stand-in's
// change feed). Commands, button clicks and modal submissions go to /page/command, /page/action
// and /page/view, whose server side signs them as Slack does and sends them to the bot.
"use strict";

// Every shortcode the bot writes (tests/unit/test_page_emoji.py keeps this list complete).
// Slack shows a shortcode it does not know as typed, and never one inside code: nor does this.
const EMOJI = {
  hourglass_flowing_sand: "⏳", hourglass: "⌛", rocket: "🚀", gear: "⚙️", repeat: "🔁",
  octagonal_sign: "🛑", white_check_mark: "✅", x: "❌", black_square_for_stop: "⏹️",
  warning: "⚠️", inbox_tray: "📥", information_source: "ℹ️", lock: "🔒", unlock: "🔓", mag: "🔍",
  no_entry: "⛔", test_tube: "🧪", wastebasket: "🗑️", floppy_disk: "💾", bar_chart: "📊",
  money_with_wings: "💸", speech_balloon: "💬", tada: "🎉", thumbsup: "👍", eyes: "👀",
};

const state = {
  seq: 0, users: [], user: null, botUser: "U0BOT", channel: null, ims: {}, where: "channel",
  convs: new Map(), ephemerals: [], expanded: new Set(), view: null,
};

// What is shown: the channel, or the current user's DM with the app ("Trainbot (DM)").
function shownChannel() {
  return state.where === "dm" ? state.ims[state.user] : state.channel && state.channel.id;
}
// Each conversation's root messages (by ts) and thread replies (by root ts).
function conv(channel) {
  if (!state.convs.has(channel)) state.convs.set(channel, { roots: new Map(), replies: new Map() });
  return state.convs.get(channel);
}

const $ = (id) => document.getElementById(id);

function esc(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}
function decode(s) {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}
function userName(id) {
  const user = state.users.find((u) => u.id === id);
  return user ? user.name : id === state.botUser ? "trainbot" : id;
}

// Slack mrkdwn, well enough: *bold* _italic_ ~strike~ `code` ```pre``` <url|label> <@U…> :emoji:
// Code is shown as typed: no bold, italics or emoji inside it (an ARN's `:aws:` stays text).
function fmt(text) {
  const codes = [];
  const keep = (html) => "\u0000" + (codes.push(html) - 1) + "\u0000";
  let s = esc(decode(text));
  s = s.replace(/```([\s\S]*?)```/g, (_, c) => keep("<pre>" + c + "</pre>"));
  s = s.replace(/`([^`\n]+)`/g, (_, c) => keep("<code>" + c + "</code>"));
  s = s.replace(/(^|[\s(>])\*([^*\n]+)\*/g, "$1<b>$2</b>");
  s = s.replace(/(^|[\s(>])_([^_\n]+)_/g, "$1<i>$2</i>");
  s = s.replace(/(^|[\s(>])~([^~\n]+)~/g, "$1<s>$2</s>");
  s = s.replace(/:([a-z0-9_+\-]+):/g, (all, name) => EMOJI[name] || all);
  return s.replace(/\u0000(\d+)\u0000/g, (_, i) => codes[Number(i)]).replace(/\n/g, "<br>");
}
function markup(inner) {
  if (inner.startsWith("@")) return `<span class="mention">@${esc(userName(inner.slice(1).split("|")[0]))}</span>`;
  if (inner.startsWith("#")) return `<span class="mention">#${esc(inner.split("|")[1] || inner.slice(1))}</span>`;
  if (inner.startsWith("!")) return `<span class="mention">@${esc(inner.slice(1).split("|")[0])}</span>`;
  const [url, label] = inner.split("|");
  return `<a href="${esc(url)}" target="_blank" rel="noopener">${fmt(label || url)}</a>`;
}
function mrkdwn(text) {
  let out = "", last = 0, m;
  const re = /<([^<>]+)>/g;
  text = String(text || "");
  while ((m = re.exec(text))) {
    out += fmt(text.slice(last, m.index)) + markup(m[1]);
    last = re.lastIndex;
  }
  return out + fmt(text.slice(last));
}
function textObject(t) {
  if (!t) return "";
  return t.type === "mrkdwn" ? mrkdwn(t.text) : fmt(t.text || "").replace(/<\/?(b|i|s|code|pre)>/g, "");
}

// --- Block Kit ------------------------------------------------------------------------------
function button(el, msg, blockId) {
  const b = document.createElement("button");
  b.className = "sk" + (el.style ? " " + el.style : "");
  b.innerHTML = textObject(el.text);
  b.dataset.actionId = el.action_id || "";
  b.dataset.value = el.value || "";
  b.onclick = () => {
    if (el.url) window.open(el.url, "_blank", "noopener");
    b.disabled = true;
    post("/page/action", { action_id: el.action_id, value: el.value || "", message_ts: msg.ts, block_id: blockId, channel: msg.channel || shownChannel(), user: state.user })
      .finally(() => { b.disabled = false; });
  };
  return b;
}
function renderBlocks(blocks, msg) {
  const frag = document.createDocumentFragment();
  for (const block of blocks) {
    const div = document.createElement("div");
    div.className = "block " + block.type;
    if (block.type === "section") {
      if (block.text) div.innerHTML = textObject(block.text);
      if (block.fields) {
        const grid = document.createElement("div");
        grid.className = "fields";
        grid.innerHTML = block.fields.map((f) => `<div>${textObject(f)}</div>`).join("");
        div.appendChild(grid);
      }
      if (block.accessory && block.accessory.type === "button") {
        const acc = document.createElement("div");
        acc.className = "accessory";
        acc.appendChild(button(block.accessory, msg, block.block_id || ""));
        div.appendChild(acc);
      }
    } else if (block.type === "context") {
      div.innerHTML = (block.elements || []).map((e) => (e.type === "image" ? esc(e.alt_text || "") : textObject(e))).join(" ");
    } else if (block.type === "actions") {
      for (const el of block.elements || []) if (el.type === "button") div.appendChild(button(el, msg, block.block_id || "actions"));
    } else if (block.type === "header") {
      div.innerHTML = `<b style="font-size:17px">${textObject(block.text)}</b>`;
    } else if (block.type === "divider") {
      div.innerHTML = "<hr>";
    } else if (block.type === "image") {
      div.innerHTML = `<img src="${esc(block.image_url)}" alt="${esc(block.alt_text || "")}" style="max-width:420px">`;
    } else {
      continue;
    }
    frag.appendChild(div);
  }
  return frag;
}

function renderMessage(msg, opts = {}) {
  const div = document.createElement("div");
  div.className = "message" + (msg.ephemeral_to ? " ephemeral" : "") + (opts.orphan ? " orphan" : "");
  div.dataset.ts = msg.ts;
  div.dataset.testid = opts.reply ? "reply" : msg.ephemeral_to ? "ephemeral" : "message";
  const when = new Date(parseFloat(msg.ts) * 1000);
  const clock = isNaN(when) ? "" : when.toLocaleTimeString();
  div.innerHTML = `<div class="meta"><b>${esc(userName(msg.user))}</b>APP ${esc(clock)}${msg.edited ? " (edited)" : ""}</div>`;
  if (msg.ephemeral_to) div.insertAdjacentHTML("beforeend", `<div class="only">Only visible to you</div>`);
  if (opts.orphan) div.insertAdjacentHTML("beforeend", `<div class="only">in a thread from an earlier run</div>`);
  const body = document.createElement("div");
  body.className = "body";
  if (msg.blocks && msg.blocks.length) body.appendChild(renderBlocks(msg.blocks, msg));
  else body.innerHTML = mrkdwn(msg.text);
  for (const f of msg.files || []) body.insertAdjacentHTML("beforeend", fileHtml(f));
  div.appendChild(body);
  return div;
}

// An image is shown inline, as Slack shows it (click: full size); any other file is a link.
function fileHtml(f) {
  const url = `/files/${esc(f.id)}`;
  if ((f.mimetype || "").startsWith("image/")) {
    return `<figure class="file-image" data-testid="file-image"><a href="${url}" target="_blank">` +
      `<img src="${url}" alt="${esc(f.alt_txt || f.title || f.name)}"></a><figcaption>${esc(f.title || f.name)}</figcaption></figure>`;
  }
  return `<div><a href="${url}" target="_blank">📎 ${esc(f.name)}</a></div>`;
}

function threadOf(ts) {
  const here = shownChannel();
  const replies = (conv(here).replies.get(ts) || []).slice();
  for (const e of state.ephemerals) if (e.thread_ts === ts && e.ephemeral_to === state.user && e.channel === here) replies.push(e);
  return replies.sort((a, b) => parseFloat(a.ts) - parseFloat(b.ts));
}

function renderSidebar() {
  const dm = state.where === "dm";
  $("channel-name").classList.toggle("active", !dm);
  $("dm").classList.toggle("active", dm);
  const count = conv(state.ims[state.user]).roots.size;
  $("dm-count").textContent = count ? String(count) : "";
  $("header-channel").textContent = dm ? "Trainbot (DM)" : "# " + (state.channel ? state.channel.name : "");
  // Commands go to the channel: the DM only carries what the bot sends you.
  $("composer").hidden = dm;
}

function render() {
  renderSidebar();
  const here = shownChannel();
  const { roots, replies: threads } = conv(here);
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const items = [];
  for (const msg of roots.values()) items.push({ ts: msg.ts, msg });
  for (const e of state.ephemerals) if (e.ephemeral_to === state.user && !e.thread_ts && e.channel === here) items.push({ ts: e.ts, msg: e });
  for (const [ts, replies] of threads) if (!roots.has(ts) && replies.length) items.push({ ts: replies[0].ts, msg: replies[0], orphanRoot: ts });
  items.sort((a, b) => parseFloat(a.ts) - parseFloat(b.ts));
  box.replaceChildren();
  for (const item of items) {
    const rootTs = item.orphanRoot || item.msg.ts;
    const wrap = renderMessage(item.msg, { orphan: !!item.orphanRoot });
    const replies = item.msg.ephemeral_to ? [] : threadOf(rootTs).filter((r) => r.ts !== item.msg.ts);
    if (replies.length) {
      const toggle = document.createElement("button");
      toggle.className = "thread-toggle";
      toggle.dataset.testid = "thread-toggle";
      const open = state.expanded.has(rootTs);
      toggle.textContent = `${replies.length} ${replies.length === 1 ? "reply" : "replies"} ${open ? "▾" : "▸"}`;
      toggle.onclick = () => { open ? state.expanded.delete(rootTs) : state.expanded.add(rootTs); render(); };
      wrap.appendChild(toggle);
      if (open) {
        const thread = document.createElement("div");
        thread.className = "thread";
        thread.dataset.testid = "thread";
        for (const reply of replies) thread.appendChild(renderMessage(reply, { reply: true }));
        wrap.appendChild(thread);
      }
    }
    box.appendChild(wrap);
  }
  if (atBottom) box.scrollTop = box.scrollHeight;
}

// --- state and events ---------------------------------------------------------------------------
function isReply(msg) {
  return msg.thread_ts && msg.thread_ts !== msg.ts;
}
function putMessage(channel, msg) {
  const { roots, replies } = conv(channel);
  if (isReply(msg)) {
    const list = replies.get(msg.thread_ts) || [];
    const i = list.findIndex((m) => m.ts === msg.ts);
    if (i >= 0) list[i] = msg; else list.push(msg);
    replies.set(msg.thread_ts, list);
  } else {
    roots.set(msg.ts, msg);
  }
}
function removeMessage(channel, ts) {
  const { roots, replies } = conv(channel);
  roots.delete(ts);
  for (const list of replies.values()) {
    const i = list.findIndex((m) => m.ts === ts);
    if (i >= 0) list.splice(i, 1);
  }
  state.ephemerals = state.ephemerals.filter((m) => m.ts !== ts);
}
function apply(event) {
  switch (event.type) {
    case "message":
    case "file":
      putMessage(event.channel, event.message);
      break;
    case "update": {
      const e = state.ephemerals.findIndex((m) => m.ts === event.ts);
      if (e >= 0) state.ephemerals[e] = event.message; else putMessage(event.channel, event.message);
      break;
    }
    case "delete":
      removeMessage(event.channel, event.ts);
      break;
    case "ephemeral":
      state.ephemerals.push(event.message);
      break;
    case "view":
      if (event.action === "open" || event.action === "push" || (state.view && state.view.id === event.view_id)) showModal(event.view);
      break;
  }
}

async function load() {
  const data = await (await fetch("/page/state", { cache: "no-store" })).json();
  state.seq = data.seq;
  state.users = data.users;
  state.botUser = data.bot_user_id;
  state.channel = data.channel;
  state.ims = data.ims;
  state.convs = new Map();
  for (const [channel, messages] of [[data.channel.id, data.messages], ...Object.entries(data.dms)]) {
    const { roots, replies: threads } = conv(channel);
    for (const root of messages) {
      const { replies, ...msg } = root;
      roots.set(msg.ts, msg);
      if (replies && replies.length) threads.set(msg.ts, replies);
    }
  }
  state.ephemerals = data.ephemerals;
  $("team").textContent = data.team.name;
  $("channel-name").textContent = "# " + data.channel.name;
  $("channel-name").onclick = () => { state.where = "channel"; render(); };
  $("dm").onclick = () => { state.where = "dm"; render(); };
  document.title = `#${data.channel.name} · ${data.team.name}`;
  $("stats-link").hidden = !data.stats;
  const select = $("user");
  if (!select.options.length) {
    for (const u of data.users) select.add(new Option(`${u.name} (${u.id})`, u.id));
    state.user = data.users[0].id;
    select.onchange = () => { state.user = select.value; render(); };
  }
  render();
}

async function poll() {
  for (;;) {
    try {
      const response = await fetch(`/page/events?since=${state.seq}&timeout=20`, { cache: "no-store" });
      const data = await response.json();
      $("status").textContent = "live";
      if (data.first && data.first > state.seq + 1) { await load(); continue; }  // fell behind: reload
      for (const event of data.events) apply(event);
      state.seq = data.seq;
      if (data.events.length) render();
    } catch (err) {
      $("status").textContent = "reconnecting…";
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

function post(path, body) {
  return fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })
    .then((r) => r.json());
}

// --- modals -------------------------------------------------------------------------------------
function showModal(view) {
  state.view = view;
  const modal = $("modal");
  const dialog = document.createElement("form");
  dialog.className = "dialog";
  dialog.innerHTML = `<h2>${textObject(view.title)}</h2>`;
  for (const block of view.blocks || []) {
    if (block.type === "input") {
      const el = block.element || {};
      const id = `f-${block.block_id}`;
      const field = el.multiline ? document.createElement("textarea") : document.createElement("input");
      field.id = id;
      field.name = block.block_id;
      field.dataset.actionId = el.action_id || "value";
      field.placeholder = el.placeholder ? el.placeholder.text : "";
      if (el.multiline) field.rows = 3;
      const label = document.createElement("label");
      label.htmlFor = id;
      label.innerHTML = textObject(block.label) + (block.optional ? ' <span style="font-weight:400;color:#888">(optional)</span>' : "");
      // Slack refuses to send a form with a required (not optional) input empty.
      field.required = !block.optional;
      dialog.append(label, field);
      if (block.hint) dialog.insertAdjacentHTML("beforeend", `<div class="hint" data-hint="${esc(block.block_id)}" style="color:#888;font-size:12px">${textObject(block.hint)}</div>`);
      dialog.insertAdjacentHTML("beforeend", `<div class="error" data-error="${esc(block.block_id)}"></div>`);
    } else {
      dialog.appendChild(renderBlocks([block], { ts: "" }));
    }
  }
  dialog.insertAdjacentHTML("beforeend", `<div class="buttons"><button type="button" class="sk" data-close>${textObject(view.close) || "Cancel"}</button> <button type="submit" class="sk primary">${textObject(view.submit) || "Submit"}</button></div>`);
  dialog.querySelector("[data-close]").onclick = closeModal;
  dialog.onsubmit = async (ev) => {
    ev.preventDefault();
    const values = {};
    for (const field of dialog.querySelectorAll("input, textarea")) values[field.name] = { [field.dataset.actionId]: field.value };
    const result = await post("/page/view", { view_id: view.id, values, user: state.user });
    const answer = result.answer || {};
    dialog.querySelectorAll("[data-error]").forEach((e) => (e.textContent = ""));
    if (answer.response_action === "errors") {
      for (const [block, text] of Object.entries(answer.errors || {})) {
        const slot = dialog.querySelector(`[data-error="${CSS.escape(block)}"]`);
        if (slot) slot.textContent = text;
      }
      return;
    }
    closeModal();
  };
  modal.replaceChildren(dialog);
  modal.hidden = false;
}
function closeModal() {
  $("modal").hidden = true;
  $("modal").replaceChildren();
  state.view = null;
}

// --- the composer -------------------------------------------------------------------------------
$("composer").onsubmit = async (ev) => {
  ev.preventDefault();
  const input = $("input");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  if (!text.startsWith("/")) {
    state.ephemerals.push({ ts: String(Date.now() / 1000), user: state.botUser, text: "Only `/train …` commands reach Trainbot here.", ephemeral_to: state.user, channel: shownChannel(), blocks: [] });
    render();
    return;
  }
  await post("/page/command", { text, user: state.user });
};

load().then(poll);
