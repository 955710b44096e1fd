// chief playground: chat with several models side by side, and read eval diffs sample by sample.
// Plain JavaScript, no framework, nothing loaded from elsewhere. Live, it talks to the JSON API
// of `chief playground` (same origin; the token rides in an HttpOnly cookie). Exported
// (`chief playground --export DIR`), `window.CHIEF_EXPORT` holds every diff and saved row, and
// the chat is hidden (it needs a backend). Every text from the server is set as textContent.
"use strict";

(function () {
  const EXPORT = window.CHIEF_EXPORT || null;
  const $ = (selector) => document.querySelector(selector);
  const CATEGORY_LABELS = {
    disagree: "disagree",
    fixed: "fixed (A wrong, B right)",
    broken: "broken (A right, B wrong)",
    both_wrong: "both wrong",
    both_right: "both right",
    improved: "B better",
    regressed: "B worse",
    same: "same score",
    unpaired: "not paired",
    all: "all",
  };
  const DISAGREE = ["fixed", "broken", "improved", "regressed"];

  const state = {
    info: null, // /api/state, or the export
    pickers: [], // model refs, one per pane
    turns: [], // {role: "user", text} | {role: "assistant", answers: {ref: answer}}
    busy: false,
    diff: null,
    filter: "disagree",
  };

  // ------------------------------------------------------------------------------ helpers

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function banner(message, kind) {
    const box = $("#banner");
    box.hidden = !message;
    box.className = kind || "error";
    box.textContent = message || "";
  }

  async function api(path, options) {
    const response = await fetch(path, {
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      ...(options || {}),
    });
    const text = await response.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch (error) {
      body = { error: text.trim() || `HTTP ${response.status}` };
    }
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    return body;
  }

  function fmt(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    return Number(value).toPrecision(digits || 4);
  }

  function visible(text) {
    // Whitespace drawn so a token's text can be seen (the page shows tokens one by one).
    return text.replace(/\n/g, "↵").replace(/\t/g, "⇥").replace(/ /g, "·") || "∅";
  }

  // ------------------------------------------------------------------------------- router

  function route() {
    const [view, query] = (location.hash.slice(1) || "").split("?");
    const chosen = ["chat", "diff", "saved"].includes(view) ? view : EXPORT ? "diff" : "chat";
    const shown = chosen === "chat" && !chatAvailable() ? "diff" : chosen;
    for (const name of ["chat", "diff", "saved"]) {
      $(`#view-${name}`).hidden = name !== shown;
      $(`#nav-${name}`).classList.toggle("active", name === shown);
    }
    if (shown === "diff") openDiffFromQuery(new URLSearchParams(query || ""));
    if (shown === "saved") showSaved();
  }

  function chatAvailable() {
    return !EXPORT && state.info && state.info.chat;
  }

  // --------------------------------------------------------------------------------- chat

  function choices() {
    return (state.info && state.info.models) || [];
  }

  function choiceLabel(choice) {
    const metrics = Object.entries(choice.headline || {})
      .slice(0, 2)
      .map(([key, value]) => `${key}=${fmt(value, 3)}`)
      .join(", ");
    if (choice.kind === "version") return `${choice.ref} [${choice.status}]${metrics ? " " + metrics : ""}`;
    if (choice.kind === "base") return `${choice.ref} (base model)`;
    return choice.ref;
  }

  function defaultPicks() {
    const all = choices();
    const base = all.find((c) => c.kind === "base");
    // Beside the base model: the prod checkpoint, else staging, else the newest trained one.
    const trained = all.filter((c) => c.kind === "version" && c.target.startsWith("tinker://"));
    const best =
      trained.find((c) => c.status === "prod") ||
      trained.find((c) => c.status === "staging") ||
      trained[trained.length - 1];
    const picks = [base, best].filter(Boolean).map((c) => c.ref);
    return picks.length ? picks : all.slice(0, 2).map((c) => c.ref);
  }

  function renderPickers() {
    const box = $("#pickers");
    box.replaceChildren();
    const groups = [
      ["version", "registry versions"],
      ["base", "base models"],
      ["path", "tinker:// paths"],
    ];
    state.pickers.forEach((ref, index) => {
      const select = el("select", {
        "data-testid": "model-picker",
        "aria-label": `model ${index + 1}`,
        onchange: (event) => {
          state.pickers[index] = event.target.value;
          renderPanes();
        },
      });
      for (const [kind, label] of groups) {
        const members = choices().filter((c) => c.kind === kind);
        if (!members.length) continue;
        const group = el("optgroup", { label });
        for (const choice of members) {
          group.append(el("option", { value: choice.ref, text: choiceLabel(choice), selected: choice.ref === ref }));
        }
        select.append(group);
      }
      const remove = el("button", {
        type: "button",
        class: "small",
        title: "remove this model",
        text: "×",
        disabled: state.pickers.length <= 1,
        onclick: () => {
          state.pickers.splice(index, 1);
          renderPickers();
          renderPanes();
        },
      });
      box.append(el("span", { class: "picker" }, select, remove));
    });
    $("#add-model").disabled = state.pickers.length >= 4;
  }

  function addPath() {
    const input = $("#path-input");
    const path = input.value.trim();
    if (!path.startsWith("tinker://")) {
      banner("a path starts with tinker:// (for example tinker://run-1/sampler_weights/final)");
      return;
    }
    if (!choices().some((c) => c.ref === path)) state.info.models.push({ ref: path, kind: "path", target: path });
    if (state.pickers.length < 4) state.pickers.push(path);
    else state.pickers[state.pickers.length - 1] = path;
    input.value = "";
    banner("");
    renderPickers();
    renderPanes();
  }

  function answerFor(turn, ref) {
    // A model added mid-chat continues from the first model's answers.
    return turn.answers[ref] || Object.values(turn.answers)[0];
  }

  function answerText(answer) {
    if (!answer) return "";
    if (answer.edited !== null && answer.edited !== undefined) return answer.edited;
    const sample = answer.samples[answer.chosen] || {};
    return sample.text !== null && sample.text !== undefined ? sample.text : (sample.tokens || []).map((t) => t.text).join("");
  }

  function messagesFor(ref, upTo) {
    const messages = [];
    for (const turn of state.turns.slice(0, upTo)) {
      if (turn.role === "user") messages.push({ role: "user", content: turn.text });
      else messages.push({ role: "assistant", content: answerText(answerFor(turn, ref)) });
    }
    return messages;
  }

  function settings() {
    const number = (id, fallback) => {
      const value = Number($(id).value);
      return $(id).value === "" || Number.isNaN(value) ? fallback : value;
    };
    return {
      system: $("#system").value,
      temperature: number("#temperature", 0.7),
      top_p: number("#top-p", 1),
      max_tokens: number("#max-tokens", 128),
      seed: $("#seed").value === "" ? null : number("#seed", 0),
      samples: number("#samples", 1),
    };
  }

  function tokenSpan(token) {
    const span = el("span", { class: "tok", text: token.text });
    span.chiefToken = token;
    return span;
  }

  function showTokenInfo(event) {
    const token = event.target.chiefToken;
    if (!token) return;
    const box = $("#tokinfo");
    const p = token.logprob === null || token.logprob === undefined ? null : Math.exp(token.logprob);
    const lines = [
      el("div", { class: "tok-head" }, el("code", { text: visible(token.text) }), ` id ${token.id}`),
      el("div", { "data-testid": "token-prob", text: p === null ? "p = (not scored yet)" : `p = ${fmt(p, 4)} (log-prob ${fmt(token.logprob, 4)})` }),
    ];
    if (token.top && token.top.length) {
      const rows = token.top.map((alt) =>
        el("tr", { class: alt.id === token.id ? "chosen" : "" }, el("td", {}, el("code", { text: visible(alt.text) })), el("td", { text: fmt(Math.exp(alt.logprob), 3) })),
      );
      lines.push(el("div", { class: "muted", text: "top alternatives (the model's own distribution)" }), el("table", {}, rows));
    }
    box.replaceChildren(...lines);
    box.hidden = false;
    const rect = event.target.getBoundingClientRect();
    box.style.left = `${Math.min(window.scrollX + rect.left, window.scrollX + window.innerWidth - 280)}px`;
    box.style.top = `${window.scrollY + rect.bottom + 4}px`;
  }

  function hideTokenInfo() {
    $("#tokinfo").hidden = true;
  }

  function renderTurn(turn, index, ref) {
    const edit = el("button", { type: "button", class: "small", title: "edit this turn and continue from it", text: "edit" });
    if (turn.role === "user") {
      const node = el("div", { class: "turn user", "data-turn": index }, el("div", { class: "who" }, "user", edit), el("div", { class: "text", text: turn.text }));
      edit.addEventListener("click", () => editTurn(node, index, ref));
      return node;
    }
    const answer = turn.answers[ref];
    const node = el("div", { class: "turn assistant", "data-turn": index });
    const head = el("div", { class: "who" }, "assistant");
    if (!answer) {
      node.append(head, el("div", { class: "text muted", text: "(not asked: added after this turn)" }));
      return node;
    }
    if (answer.samples.length > 1) {
      answer.samples.forEach((_, i) => {
        head.append(el("button", {
          type: "button",
          class: `small tab${i === answer.chosen ? " active" : ""}`,
          text: `#${i + 1}`,
          title: "continue with this sample",
          onclick: () => {
            answer.chosen = i;
            renderPanes();
          },
        }));
      });
    }
    head.append(edit);
    edit.addEventListener("click", () => editTurn(node, index, ref));
    node.append(head);
    if (answer.error) node.append(el("div", { class: "text error", text: answer.error }));
    if (answer.edited !== null && answer.edited !== undefined) {
      node.append(el("div", { class: "text edited", title: "edited by you", text: answer.edited }));
      return node;
    }
    const sample = answer.samples[answer.chosen];
    const text = el("div", { class: "text tokens", "data-testid": "answer-text", "data-done": sample.done ? "true" : "false" });
    for (const token of sample.tokens) text.append(tokenSpan(token));
    if (sample.error) text.append(el("span", { class: "error", text: sample.error }));
    else if (!sample.done) text.append(el("span", { class: "cursor", text: "▍" }));
    node.append(text);
    if (sample.done && sample.stop_reason === "length") node.append(el("div", { class: "muted small-note", text: "(stopped at max tokens)" }));
    return node;
  }

  function editTurn(node, index, ref) {
    const turn = state.turns[index];
    const current = turn.role === "user" ? turn.text : answerText(turn.answers[ref]);
    const area = el("textarea", { rows: 3, "data-testid": "edit-box" });
    area.value = current;
    const label = turn.role === "user" ? "continue every model from here" : "keep this answer";
    const done = el("button", {
      type: "button",
      "data-testid": "edit-continue",
      text: label,
      onclick: () => {
        if (state.busy) {
          banner("wait until the answers are in, then edit");
          return;
        }
        if (turn.role === "user") {
          state.turns = state.turns.slice(0, index);
          ask(area.value);
        } else {
          turn.answers[ref].edited = area.value;
          state.turns = state.turns.slice(0, index + 1);
          renderPanes();
        }
      },
    });
    const cancel = el("button", { type: "button", text: "cancel", onclick: () => renderPanes() });
    node.replaceChildren(el("div", { class: "who" }, turn.role), area, el("div", {}, done, cancel));
    area.focus();
  }

  function lastPrompt(ref) {
    for (let i = state.turns.length - 1; i >= 0; i--) {
      const turn = state.turns[i];
      if (turn.role === "assistant" && turn.answers[ref] && turn.answers[ref].prompt) return turn.answers[ref];
    }
    return null;
  }

  function chips(tokens, withNll) {
    return tokens.map((token) => {
      const chip = el("span", { class: "chip", title: `id ${token.id}`, text: visible(token.text) });
      if (withNll && token.logprob !== null && token.logprob !== undefined) {
        const nll = -token.logprob;
        chip.style.background = `rgba(220, 60, 40, ${Math.min(1, nll / 8).toFixed(3)})`;
        chip.title = `id ${token.id}, NLL ${fmt(nll, 3)} nats (p = ${fmt(Math.exp(token.logprob), 3)})`;
        chip.chiefToken = token;
      }
      return chip;
    });
  }

  function togglePromptTokens(pane, ref) {
    const existing = pane.querySelector("[data-testid=prompt-tokens]");
    if (existing) {
      existing.remove();
      return;
    }
    const answer = lastPrompt(ref);
    const box = el("div", { class: "prompt-tokens", "data-testid": "prompt-tokens" });
    if (!answer) box.append(el("p", { class: "muted", text: "Nothing sent yet: the tokens of the last prompt appear here." }));
    else {
      box.append(
        el("p", { class: "muted", text: `${answer.prompt.length} tokens sent (renderer ${answer.renderer}, base model ${answer.base_model}):` }),
        el("div", { class: "chips" }, chips(answer.prompt, false)),
      );
    }
    pane.querySelector(".pane-tools").after(box);
  }

  async function promptNll(pane, ref) {
    const old = pane.querySelector("[data-testid=prompt-nll]");
    if (old) {
      old.remove();
      return;
    }
    const upTo = lastUserIndex() + 1;
    if (upTo <= 0) {
      banner("ask something first: the prompt scored is the chat up to its last question");
      return;
    }
    const box = el("div", { class: "prompt-tokens", "data-testid": "prompt-nll" }, el("p", { class: "muted", text: "scoring…" }));
    pane.querySelector(".pane-tools").after(box);
    try {
      const body = JSON.stringify({ model: ref, system: settings().system, messages: messagesFor(ref, upTo), nll: true });
      const scored = await api("api/prompt", { method: "POST", body });
      box.replaceChildren(
        el("p", { class: "muted", text: `prompt NLL ${fmt(scored.nll, 4)} nats/token over ${scored.tokens.length - 1} scored tokens (renderer ${scored.renderer})` }),
        el("div", { class: "chips" }, chips(scored.tokens, true)),
      );
    } catch (error) {
      box.replaceChildren(el("p", { class: "error", text: error.message }));
    }
  }

  async function saveRow(ref) {
    const last = state.turns[state.turns.length - 1];
    if (!last || last.role !== "assistant" || !answerText(answerFor(last, ref))) {
      banner("nothing to save: a saved row ends with an answer");
      return;
    }
    try {
      const body = JSON.stringify({
        model: ref,
        system: settings().system,
        messages: messagesFor(ref, state.turns.length),
        target: $("#save-target").value || null,
      });
      const saved = await api("api/save", { method: "POST", body });
      banner(saved.saved ? `saved to ${saved.path} as ${saved.id}` : `already in ${saved.path} (${saved.id})`, "info");
    } catch (error) {
      banner(error.message);
    }
  }

  function lastUserIndex() {
    for (let i = state.turns.length - 1; i >= 0; i--) if (state.turns[i].role === "user") return i;
    return -1;
  }

  function renderPanes() {
    const box = $("#panes");
    box.replaceChildren();
    box.style.setProperty("--columns", String(Math.max(1, state.pickers.length)));
    for (const ref of state.pickers) {
      const pane = el("div", { class: "pane" });
      const tools = el(
        "div",
        { class: "pane-tools" },
        el("strong", { class: "pane-title", text: ref }),
        el("button", { type: "button", class: "small", "data-testid": "show-tokens", text: "show the tokens", onclick: () => togglePromptTokens(pane, ref) }),
        el("button", { type: "button", class: "small", "data-testid": "prompt-nll-button", text: "prompt NLL", onclick: () => promptNll(pane, ref) }),
        el("button", { type: "button", class: "small", "data-testid": "save-row", text: "save as eval row", onclick: () => saveRow(ref) }),
      );
      const conversation = el("div", { class: "conversation", "data-testid": "answer", "data-model": ref });
      const system = settings().system;
      if (system) conversation.append(el("div", { class: "turn system" }, el("div", { class: "who", text: "system" }), el("div", { class: "text", text: system })));
      state.turns.forEach((turn, index) => conversation.append(renderTurn(turn, index, ref)));
      pane.append(tools, conversation);
      box.append(pane);
    }
  }

  async function ask(text) {
    if (state.busy) return;
    if (!text.trim()) {
      banner("type a question first");
      return;
    }
    banner("");
    const options = settings();
    state.turns.push({ role: "user", text });
    const index = state.turns.length;
    const answers = {};
    const count = Math.max(1, Math.min(8, Math.round(options.samples)));
    for (const ref of state.pickers) {
      answers[ref] = { samples: Array.from({ length: count }, () => ({ tokens: [], text: null, done: false })), chosen: 0, edited: null };
    }
    const chats = state.pickers.map((ref) => ({ model: ref, messages: messagesFor(ref, index) }));
    state.turns.push({ role: "assistant", answers });
    renderPanes();
    state.busy = true;
    $("#send").disabled = true;
    try {
      await streamChat({ chats, ...options }, answers);
    } catch (error) {
      banner(error.message);
      for (const answer of Object.values(answers)) {
        for (const sample of answer.samples) if (!sample.done && !sample.error) sample.error = error.message;
      }
    } finally {
      state.busy = false;
      $("#send").disabled = false;
      renderPanes();
    }
  }

  async function streamChat(body, answers) {
    const response = await fetch("api/chat", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      const text = await response.text();
      let message = text;
      try {
        message = JSON.parse(text).error;
      } catch (error) {
        /* not JSON: show the text */
      }
      throw new Error(message || `HTTP ${response.status}`);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        if (line.trim()) apply(JSON.parse(line), answers);
      }
      renderPanes();
    }
  }

  function apply(event, answers) {
    const answer = answers[event.model];
    if (!answer) return;
    const sample = event.sample === null || event.sample === undefined ? null : answer.samples[event.sample];
    if (event.type === "prompt") {
      answer.prompt = event.tokens;
      answer.renderer = event.renderer;
      answer.base_model = event.base_model;
    } else if (event.type === "tokens" && sample) {
      sample.tokens.push(...event.tokens);
    } else if (event.type === "done" && sample) {
      Object.assign(sample, { tokens: event.tokens, text: event.text, stop_reason: event.stop_reason, done: true });
    } else if (event.type === "error") {
      if (sample) Object.assign(sample, { error: event.message, done: true });
      else for (const each of answer.samples) Object.assign(each, { error: event.message, done: true });
    }
  }

  function setupChat() {
    state.pickers = defaultPicks();
    const targets = $("#save-target");
    for (const target of state.info.save_targets || []) targets.append(el("option", { value: target, text: target }));
    renderPickers();
    renderPanes();
    $("#add-model").addEventListener("click", () => {
      const next = choices().find((c) => !state.pickers.includes(c.ref)) || choices()[0];
      if (next && state.pickers.length < 4) state.pickers.push(next.ref);
      renderPickers();
      renderPanes();
    });
    $("#add-path").addEventListener("click", addPath);
    $("#prompt-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const text = $("#prompt").value;
      ask(text).then(() => {
        if (!state.busy) $("#prompt").value = "";
      });
    });
    $("#prompt").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("#prompt-form").requestSubmit();
    });
    $("#new-chat").addEventListener("click", () => {
      state.turns = [];
      renderPanes();
    });
    $("#system").addEventListener("change", renderPanes);
    $("#panes").addEventListener("mouseover", showTokenInfo);
    $("#panes").addEventListener("mouseout", hideTokenInfo);
  }

  // ----------------------------------------------------------------------------- eval diff

  function tasks() {
    return (state.info && state.info.tasks) || [];
  }

  function fillSelect(select, values, chosen) {
    select.replaceChildren(...values.map(([value, label]) => el("option", { value, text: label, selected: value === chosen })));
    if (!values.some(([value]) => value === chosen) && values.length) select.value = values[0][0];
  }

  function openDiffFromQuery(query) {
    const all = tasks();
    if (!all.length) {
      showEmpty("Nothing to diff yet: evaluate two versions on the same task (`chief eval MODEL`).");
      fillSelect($("#diff-task"), [], null);
      return;
    }
    const task = all.find((t) => t.name === query.get("task")) || all.find((t) => t.versions.length > 1) || all[0];
    fillSelect($("#diff-task"), all.map((t) => [t.name, `${t.name} (${t.versions.length} versions)`]), task.name);
    const versions = task.versions.map((v) => [v.ref, v.label]);
    // By default the base model (A) against the prod checkpoint, else the newest trained one (B).
    const untrained = task.versions.find((v) => !v.trained) || task.versions[0];
    const trained = task.versions.filter((v) => v.trained && v.ref !== untrained.ref);
    const best =
      trained.find((v) => v.status === "prod") || trained[trained.length - 1] || task.versions[task.versions.length - 1];
    const a = query.get("a") || untrained.ref;
    const b = query.get("b") || best.ref;
    fillSelect($("#diff-a"), versions, a);
    fillSelect($("#diff-b"), versions, b);
    state.filter = query.get("filter") || "disagree";
    loadDiff();
  }

  function diffQuery() {
    const query = new URLSearchParams({ task: $("#diff-task").value, a: $("#diff-a").value, b: $("#diff-b").value });
    if (state.filter !== "disagree") query.set("filter", state.filter);
    return query;
  }

  function onDiffPick(event) {
    if (event && event.target.id === "diff-task") {
      const query = new URLSearchParams({ task: $("#diff-task").value });
      history.replaceState(null, "", `#diff?${query}`);
      openDiffFromQuery(query);
      return;
    }
    history.replaceState(null, "", `#diff?${diffQuery()}`);
    loadDiff();
  }

  function showEmpty(message) {
    $("#diff-summary").replaceChildren();
    $("#diff-filters").replaceChildren();
    $("#diff-rows").replaceChildren();
    $("#diff-table").hidden = true;
    $("#diff-empty").hidden = !message;
    $("#diff-empty").textContent = message || "";
  }

  async function loadDiff() {
    const task = $("#diff-task").value;
    const a = $("#diff-a").value;
    const b = $("#diff-b").value;
    if (!task || !a || !b) return;
    if (a === b) {
      showEmpty("Pick two different versions to compare.");
      return;
    }
    showEmpty("loading…");
    try {
      state.diff = EXPORT ? exportedDiff(task, a, b) : await api(`api/diff?${new URLSearchParams({ task, a, b })}`);
      renderDiff();
    } catch (error) {
      showEmpty(error.message);
    }
  }

  function exportedDiff(task, a, b) {
    const diff = ((EXPORT.diffs[task] || {})[a] || {})[b];
    if (!diff) throw new Error(`this export holds no diff of ${b} against ${a} on ${task}`);
    return diff;
  }

  function testSummary(diff) {
    const test = diff.test;
    const side = (s) => `${s.ref}: ${s.value ? fmt(s.value.value, 4) : "–"}`;
    const values = el("p", { text: `${diff.headline || "outcome"} — A ${side(diff.a)} · B ${side(diff.b)}` });
    if (!test) return [values, el("p", { class: "muted", text: "No paired test: the runs share no samples on one headline metric." })];
    const direction = test.delta > 0 ? "B higher" : test.delta < 0 ? "B lower" : "no difference";
    const verdict = test.significant ? `significant at α = ${test.alpha}` : `not significant at α = ${test.alpha}`;
    const parts = [`${test.method}: n = ${test.n} paired samples`];
    if (test.fixed !== null && test.fixed !== undefined) parts.push(`B fixed ${test.fixed}, broke ${test.broken}`);
    parts.push(`Δ (B − A) = ${test.delta >= 0 ? "+" : ""}${fmt(test.delta, 4)} (${direction})`);
    if (test.ci_low !== null && test.ci_low !== undefined) parts.push(`95% CI [${fmt(test.ci_low, 3)}, ${fmt(test.ci_high, 3)}]`);
    parts.push(`p = ${fmt(test.p_value, 3)}, ${verdict}`);
    return [values, el("p", { "data-testid": "diff-test", class: test.significant ? "significant" : "", text: parts.join("; ") })];
  }

  function matches(sample) {
    if (state.filter === "all") return true;
    if (state.filter === "disagree") return DISAGREE.includes(sample.category);
    return sample.category === state.filter;
  }

  function messagesView(prompt) {
    if (!prompt || !prompt.length) return el("span", { class: "muted", text: "(no record)" });
    const last = prompt[prompt.length - 1];
    const box = el("div", {}, el("div", { class: "pre", text: last.content }));
    if (prompt.length > 1) {
      const earlier = el("details", {}, el("summary", { text: `${prompt.length - 1} earlier message(s)` }));
      for (const message of prompt.slice(0, -1)) earlier.append(el("div", { class: "pre" }, el("b", { text: `${message.role}: ` }), message.content));
      box.prepend(earlier);
    }
    return box;
  }

  function answerView(view) {
    if (!view || (view.response === undefined && view.score === null)) return el("span", { class: "muted", text: "(no record)" });
    const verdict = view.passed === true || view.correct === true ? "✓ right" : view.passed === false || view.correct === false ? "✗ wrong" : view.score !== null && view.score !== undefined ? `score ${fmt(view.score, 4)}` : "not scored";
    const box = el("div", {}, el("div", { class: `verdict ${verdict.startsWith("✓") ? "right" : verdict.startsWith("✗") ? "wrong" : ""}`, text: verdict }));
    if (view.response !== undefined && view.response !== null) box.append(el("div", { class: "pre", text: view.response }));
    if (view.error) box.append(el("div", { class: "error", text: view.error }));
    // The grader's reading of the answer, where it is not simply the answer itself.
    const extracted = view.answer !== null && view.answer !== undefined && view.answer.trim() !== (view.response || "").trim();
    const grader = [extracted ? `graded answer: ${view.answer}` : null, view.explanation || null].filter(Boolean).join(" — ");
    if (grader) box.append(el("div", { class: "muted small-note", text: grader }));
    return box;
  }

  function renderDiff() {
    const diff = state.diff;
    $("#diff-empty").hidden = true;
    $("#diff-table").hidden = false;
    $("#diff-summary").replaceChildren(...testSummary(diff), ...diff.notes.map((note) => el("p", { class: "muted", text: note })));
    $("#diff-head-a").textContent = `A: ${diff.a.ref}`;
    $("#diff-head-b").textContent = `B: ${diff.b.ref}`;
    const counts = { ...diff.counts, all: diff.samples.length, disagree: DISAGREE.reduce((n, c) => n + (diff.counts[c] || 0), 0) };
    const names = ["disagree", ...Object.keys(diff.counts).filter((c) => diff.counts[c] > 0), "all"];
    $("#diff-filters").replaceChildren(
      ...names.map((name) =>
        el("button", {
          type: "button",
          class: `filter${state.filter === name ? " active" : ""}`,
          "data-testid": `filter-${name}`,
          text: `${CATEGORY_LABELS[name] || name} (${counts[name] || 0})`,
          onclick: () => {
            state.filter = name;
            history.replaceState(null, "", `#diff?${diffQuery()}`);
            renderDiff();
          },
        }),
      ),
    );
    const rows = diff.samples.filter(matches).map((sample) =>
      el(
        "tr",
        { "data-testid": "diff-row", "data-sample": sample.id, "data-category": sample.category, class: sample.category },
        el("td", {}, el("code", { text: sample.id }), el("div", { class: `badge ${sample.category}`, text: CATEGORY_LABELS[sample.category] || sample.category })),
        el("td", {}, messagesView(sample.prompt)),
        el("td", { class: "pre", text: sample.target === null ? "–" : sample.target }),
        el("td", {}, answerView(sample.a)),
        el("td", {}, answerView(sample.b)),
      ),
    );
    $("#diff-rows").replaceChildren(...rows);
    if (!rows.length) {
      $("#diff-empty").hidden = false;
      $("#diff-empty").textContent = `No sample is ${CATEGORY_LABELS[state.filter] || state.filter}.`;
    }
  }

  function setupDiff() {
    for (const id of ["#diff-task", "#diff-a", "#diff-b"]) $(id).addEventListener("change", onDiffPick);
    $("#diff-swap").addEventListener("click", () => {
      const a = $("#diff-a").value;
      $("#diff-a").value = $("#diff-b").value;
      $("#diff-b").value = a;
      onDiffPick();
    });
  }

  // --------------------------------------------------------------------------------- saved

  async function showSaved() {
    const box = $("#saved-rows");
    let rows;
    try {
      rows = EXPORT ? EXPORT.saved : (await api("api/saved")).rows;
    } catch (error) {
      box.replaceChildren(el("p", { class: "error", text: error.message }));
      return;
    }
    $("#saved-note").textContent = rows.length
      ? `${rows.length} conversation(s) saved as eval rows in playground/conversations.jsonl`
      : "No conversations saved yet (chat, then “save as eval row”).";
    box.replaceChildren(
      ...rows.map((row) => {
        const prompt = row.messages || [...(row.system ? [{ role: "system", content: row.system }] : []), { role: "user", content: row.input }];
        return el(
          "div",
          { class: "saved", "data-testid": "saved-row" },
          el("div", { class: "muted", text: `${row.id} — answered by ${(row.metadata || {}).model || "?"}` }),
          ...prompt.map((m) => el("div", { class: "pre" }, el("b", { text: `${m.role}: ` }), m.content)),
          el("div", { class: "pre" }, el("b", { text: "output: " }), row.output),
        );
      }),
    );
  }

  // ---------------------------------------------------------------------------------- start

  async function start() {
    try {
      state.info = EXPORT || (await api("api/state"));
    } catch (error) {
      banner(error.message);
      return;
    }
    $("#project").textContent = state.info.project;
    $("#backend").textContent = EXPORT ? `static export, ${EXPORT.exported_at}` : state.info.backend ? `models on ${state.info.backend}` : "no backend";
    if (state.info.served_problem) banner(state.info.served_problem);
    $("#nav-chat").hidden = !chatAvailable();
    if (chatAvailable()) setupChat();
    setupDiff();
    window.addEventListener("hashchange", route);
    route();
    document.body.dataset.ready = "true";
  }

  start();
})();
