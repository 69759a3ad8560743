/*
 * app.js - the meshtest dashboard: plain JavaScript, no framework, served by
 * every node from its binary (src/api/api_web.c).
 *
 * Views (hash routes): #/ the evaluations, #/evaluation/<id> one evaluation's
 * projects, #/evaluation/<id>/project/<project> its modules and tests,
 * #/network the nodes. Everything is read from the public API of the node
 * that served the page.
 *
 * Rules kept throughout:
 * - Text that comes from a project (names, messages, output) enters the page
 *   only as text nodes (textContent, append(string)); nothing here parses
 *   markup, so a test called <img src=x onerror=...> is shown, never run.
 * - Live: an evaluation that runs is followed through its event stream
 *   (GET /evaluation/<id>/events, read with fetch() since EventSource cannot
 *   send the API token); each event asks for a refresh, at most one per
 *   REFRESH_MIN_MS. Without the stream (404, a network error) the page polls.
 * - Tables keep one row per key and rewrite a row only when its data changed,
 *   so a large evaluation does not rebuild its page on every refresh.
 */
"use strict";

(function () {
	const TOKEN_KEY = "meshtest.token";
	const POLL_MS = 1500;            /* polling without the event stream */
	const SAFETY_POLL_MS = 5000;     /* polling beside a live stream */
	const LIST_POLL_MS = 2000;
	const NETWORK_POLL_MS = 2000;
	const REFRESH_MIN_MS = 300;      /* at most ~3 refreshes a second from events */
	const STREAM_RETRIES = 3;        /* failed connections in a row before polling */
	const LIST_FETCHES = 4;          /* status requests in flight for the list */
	const LIST_PAGE = 100;           /* evaluations shown before "show all" */

	/* ------------------------------------------------------------ DOM */

	function $(id) {
		return document.getElementById(id);
	}

	/* An element; strings among kids become text nodes. */
	function el(tag, attrs, ...kids) {
		const e = document.createElement(tag);
		for (const k in attrs || {}) {
			if (k === "class")
				e.className = attrs[k];
			else if (k === "text")
				e.textContent = attrs[k];
			else
				e.setAttribute(k, attrs[k]);
		}
		for (const c of kids)
			if (c !== null && c !== undefined)
				e.append(c);
		return e;
	}

	function setText(node, text) {
		if (node.textContent !== text)
			node.textContent = text;
	}

	/* A count of failures: marked (bold, red) when there are any. */
	function setFailed(node, n) {
		setText(node, num(n));
		node.classList.toggle("bad", typeof n === "number" && n > 0);
	}

	function clear(node) {
		while (node.firstChild)
			node.removeChild(node.firstChild);
	}

	/* A definition list of [term, value] pairs; values are strings or nodes. */
	function facts(pairs) {
		const dl = el("dl", { class: "facts" });
		for (const [k, v] of pairs) {
			if (v === null || v === undefined)
				continue;
			dl.append(el("div", null, el("dt", null, k), el("dd", null, v)));
		}
		return dl;
	}

	/*
	 * A table row kept for one key: a header cell holding head, then one td
	 * per column (class = its name; "num" too for those in nums). Returns
	 * {tr, cells, sig}; sig is the data last written into it.
	 */
	function keyedRow(attr, key, head, cols, nums) {
		const cells = {};
		const tr = el("tr", { [attr]: key }, el("th", { scope: "row" }, head));
		for (const k of cols) {
			cells[k] = el("td", { class: nums.includes(k) ? k + " num" : k });
			tr.append(cells[k]);
		}
		return { tr, cells, sig: "" };
	}

	/*
	 * Put the nodes of keys into box in that order, in one go, when the
	 * order differs from the last one (state.order).
	 */
	function place(box, state, keys, nodeOf) {
		const order = keys.join("\n");
		if (order === state.order)
			return;
		const frag = document.createDocumentFragment();
		for (const k of keys)
			frag.append(nodeOf(k));
		clear(box);
		box.append(frag);
		state.order = order;
	}

	/* ------------------------------------------------------ formatting */

	function num(n) {
		return typeof n === "number" ? String(n) : "–";
	}

	function grade(g) {
		return typeof g === "number" ? g.toFixed(2) : "–";
	}

	function percent(p) {
		return typeof p === "number" ? p.toFixed(1) + " %" : "–";
	}

	function seconds(s) {
		if (typeof s !== "number")
			return "–";
		if (s < 60)
			return s.toFixed(s < 10 ? 2 : 1) + " s";
		const m = Math.floor(s / 60);
		if (m < 60)
			return m + " min " + Math.round(s - 60 * m) + " s";
		return Math.floor(m / 60) + " h " + (m % 60) + " min";
	}

	function when(epoch) {
		return typeof epoch === "number" ? new Date(epoch * 1000).toLocaleString() : "–";
	}

	function ago(epoch) {
		if (typeof epoch !== "number")
			return "–";
		const s = Math.max(0, Date.now() / 1000 - epoch);
		return s < 90 ? Math.round(s) + " s ago" : seconds(s) + " ago";
	}

	/* A word with a class for its colour and symbol (style.css); the word carries the meaning. */
	function badge(kind, word) {
		return el("span", { class: "badge " + kind + "-" + word, ["data-" + kind]: word }, word);
	}

	function modulesLine(d) {
		const total = (d.executed || 0) + (d.in_progress || 0) + (d.pending || 0);
		if (total === 0)
			return d.status === "running" ? "fetching projects" : "no modules";
		let s = (d.executed || 0) + " of " + total + " modules executed";
		if (d.in_progress)
			s += ", " + d.in_progress + " running";
		return s;
	}

	/* A <progress> of the modules executed (the words beside it say the same). */
	function setProgress(bar, d) {
		const total = (d.executed || 0) + (d.in_progress || 0) + (d.pending || 0);
		bar.max = total || 1;
		bar.value = total ? d.executed || 0 : (d.status === "running" ? 0 : 1);
		return bar;
	}

	/* ------------------------------------------------------------ API */

	class ApiError extends Error {
		constructor(status, message) {
			super(message);
			this.status = status;
		}
	}

	let token = sessionStorage.getItem(TOKEN_KEY) || "";
	let asking = null;               /* the pending login, shared by every 401 */

	function authHeaders(extra) {
		const h = Object.assign({ Accept: "application/json" }, extra || {});
		if (token)
			h.Authorization = "Bearer " + token;
		return h;
	}

	/*
	 * GET path as JSON. A 401 asks for the token (once, whoever asks) and
	 * tries again; other errors throw ApiError with the node's message.
	 */
	async function api(path, opts) {
		for (;;) {
			const sent = token;
			const r = await fetch(path, Object.assign({ headers: authHeaders(), cache: "no-store" },
			    opts || {}));
			if (r.status === 401) {
				if (token === sent)
					await askToken(sent !== "");
				continue;
			}
			if (!r.ok) {
				let msg = r.statusText;
				try {
					msg = (await r.json()).error || msg;
				} catch (e) {
					/* not JSON: keep the status text */
				}
				throw new ApiError(r.status, msg);
			}
			return r.json();
		}
	}

	/* Show the token form; resolves when a token was entered. */
	function askToken(refused) {
		if (asking)
			return asking;
		if (refused) {
			token = "";
			sessionStorage.removeItem(TOKEN_KEY);
		}
		asking = new Promise(function (resolve) {
			const form = $("login-form"), input = $("login-token");
			setText($("login-error"), refused ? "The node refused that token: try again." : "");
			document.body.classList.add("locked");
			$("login").hidden = false;
			input.value = "";
			input.focus();
			form.onsubmit = function (ev) {
				ev.preventDefault();
				const t = input.value.trim();
				if (!/^[\x21-\x7e]+$/.test(t)) {
					/* fetch() refuses such a header; the node would too */
					setText($("login-error"), "A token is printable ASCII without spaces.");
					return;
				}
				token = t;
				sessionStorage.setItem(TOKEN_KEY, t);
				input.value = "";
				form.onsubmit = null;
				$("login").hidden = true;
				document.body.classList.remove("locked");
				asking = null;
				resolve();
			};
		});
		return asking;
	}

	/* ------------------------------------------------ views and timers */

	let gen = 0;                     /* bumped on every navigation */
	let cleanups = [];

	function onLeave(fn) {
		cleanups.push(fn);
	}

	function leave() {
		gen++;
		for (const fn of cleanups)
			fn();
		cleanups = [];
	}

	function setLive(text) {
		setText($("live"), text);
	}

	/*
	 * Run fn now and every ms (or ms()) after it finished, while the view
	 * stays and until fn returns false.
	 */
	function every(ms, fn) {
		const my = gen;
		let timer = null;
		async function tick() {
			let again = true;
			timer = null;
			if (my !== gen)
				return;
			try {
				again = (await fn()) !== false;
			} catch (e) {
				console.error(e);
			}
			if (again && my === gen)
				timer = setTimeout(tick, typeof ms === "function" ? ms() : ms);
		}
		onLeave(function () {
			if (timer)
				clearTimeout(timer);
		});
		tick();
	}

	/* fn, run at most once per REFRESH_MIN_MS and never twice at once. */
	function throttled(fn) {
		const my = gen;
		let running = false, again = false, last = 0, timer = null;
		async function run() {
			timer = null;
			if (my !== gen)
				return;
			if (running) {
				again = true;
				return;
			}
			running = true;
			last = Date.now();
			try {
				await fn();
			} catch (e) {
				console.error(e);
			}
			running = false;
			if (again) {
				again = false;
				kick();
			}
		}
		function kick() {
			if (timer || my !== gen)
				return;
			timer = setTimeout(run, Math.max(0, last + REFRESH_MIN_MS - Date.now()));
		}
		onLeave(function () {
			if (timer)
				clearTimeout(timer);
		});
		return kick;
	}

	function showView(id, title) {
		for (const v of document.querySelectorAll(".view"))
			v.hidden = v.id !== id;
		document.title = title + " · meshtest";
		for (const a of document.querySelectorAll("nav a[id^=nav-]"))
			a.removeAttribute("aria-current");
		const nav = $(id === "view-network" ? "nav-network" : "nav-evaluations");
		nav.setAttribute("aria-current", "page");
	}

	function viewError(id, e) {
		const p = $(id);
		if (!e) {
			p.hidden = true;
			return;
		}
		p.hidden = false;
		setText(p, e.status === 404 ? "Not found on this node (yet): it may still be on its way"
		    + " from the node that accepted it." : "Cannot read it: " + e.message);
	}

	/*
	 * Keep an evaluation's view current: refresh() now; while the evaluation
	 * runs, on every event of its stream (throttled), with a slow poll beside
	 * it; or, without a stream, every POLL_MS. running() tells from the last
	 * answer whether it still runs.
	 */
	function follow(id, refresh, running) {
		const my = gen;
		let mode = "poll", lastId = null, failures = 0, ctl = null, started = false;

		/*
		 * Refresh; the first answer that says it is over ends the following,
		 * and the view it drew is final: a kick that comes later (a trailing
		 * event, the stream's end) draws nothing more.
		 */
		async function check() {
			if (my !== gen || mode === "over")
				return;
			await refresh();
			if (my !== gen || mode === "over" || running())
				return;
			mode = "over";
			if (ctl)
				ctl.abort();
			setLive("Finished");
		}
		const kick = throttled(check);

		onLeave(function () {
			if (ctl)
				ctl.abort();
		});
		setLive("Updating…");
		every(function () {
			return mode === "live" ? SAFETY_POLL_MS : POLL_MS;
		}, async function () {
			await check();
			if (my !== gen || mode === "over")
				return false;
			if (!started) {
				started = true;
				stream();
			}
			if (mode === "poll")
				setLive("Updating every " + POLL_MS / 1000 + " s");
			return true;
		});

		async function stream() {
			while (my === gen && mode !== "over") {
				const sent = token;
				const h = authHeaders({ Accept: "text/event-stream" });
				if (lastId !== null)
					h["Last-Event-ID"] = lastId;
				let r;
				ctl = new AbortController();
				try {
					r = await fetch("/evaluation/" + encodeURIComponent(id) + "/events",
					    { headers: h, cache: "no-store", signal: ctl.signal });
				} catch (e) {
					r = null;
				}
				if (my !== gen || mode === "over")
					return;
				if (r && r.status === 401) {
					if (token === sent)
						await askToken(sent !== "");
					continue;
				}
				if (r && r.status === 204) {       /* over: nothing more will come */
					kick();
					return;
				}
				if (r && !r.ok && r.status !== 503)
					break;                         /* no stream here: poll */
				if (r && r.ok && r.body) {
					mode = "live";
					setLive("Live: following events");
					const got = await readEvents(r.body, function (ev) {
						if (ev.id !== null)
							lastId = ev.id;
						failures = 0;
						kick();
					});
					if (my !== gen)
						return;
					if (got === "done") {
						/* The status may trail the last event by a moment. */
						setTimeout(kick, 1000);
						return;
					}
					mode = "poll";
				}
				if (++failures >= STREAM_RETRIES)
					break;
				await sleep(1000);
			}
			if (my === gen && mode !== "over") {
				mode = "poll";
				setLive("Updating every " + POLL_MS / 1000 + " s");
			}
		}
	}

	function sleep(ms) {
		return new Promise(function (r) {
			setTimeout(r, ms);
		});
	}

	/*
	 * Read a text/event-stream body; onEvent({id, event, data}) per event.
	 * Resolves "done" after evaluation_done or cancelled, "closed" when the
	 * stream ends otherwise or fails.
	 */
	async function readEvents(body, onEvent) {
		const reader = body.getReader();
		const dec = new TextDecoder();
		let buf = "", ev = { id: null, event: "message", data: "" }, done = false;
		try {
			for (;;) {
				const { value, done: end } = await reader.read();
				if (end)
					break;
				buf += dec.decode(value, { stream: true });
				let nl;
				while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
					const line = buf.slice(0, nl);
					buf = buf.slice(nl + (buf.startsWith("\r\n", nl) ? 2 : 1));
					if (line === "") {
						if (ev.data !== "" || ev.event !== "message") {
							onEvent(ev);
							if (ev.event === "evaluation_done" || ev.event === "cancelled")
								done = true;
						}
						ev = { id: ev.id, event: "message", data: "" };
						continue;
					}
					if (line.startsWith(":"))
						continue;
					const c = line.indexOf(":");
					const field = c < 0 ? line : line.slice(0, c);
					let v = c < 0 ? "" : line.slice(c + 1);
					if (v.startsWith(" "))
						v = v.slice(1);
					if (field === "id")
						ev.id = v;
					else if (field === "event")
						ev.event = v;
					else if (field === "data")
						ev.data += (ev.data ? "\n" : "") + v;
				}
				if (done) {
					reader.cancel().catch(function () {});
					return "done";
				}
			}
		} catch (e) {
			return "closed";
		}
		return done ? "done" : "closed";
	}

	/* --------------------------------------------------- evaluations */

	const list = {
		docs: new Map(),             /* id -> last status document */
		rows: new Map(),             /* id -> {tr, cells, sig} */
		order: "",                   /* the ids shown, in order */
		limit: LIST_PAGE,
	};

	async function fetchAll(ids, fn) {
		let next = 0;
		async function worker() {
			while (next < ids.length)
				await fn(ids[next++]);
		}
		const n = Math.min(LIST_FETCHES, ids.length);
		await Promise.all(Array.from({ length: n }, worker));
	}

	function listRow(id) {
		const link = el("a", { href: "#/evaluation/" + encodeURIComponent(id), title: id },
		    el("code", null, id.slice(0, 8)));
		const nums = ["projects", "passed", "failed", "skipped", "grade", "elapsed"];
		return keyedRow("data-id", id, link, ["submitted", "status", "progress"].concat(nums),
		    nums);
	}

	function listRowUpdate(row, d) {
		const sig = d ? [d.status, d.executed, d.in_progress, d.pending, d.passed, d.failed,
		    d.skipped, d.nota_final, Math.floor(d.elapsed_seconds || 0)].join("|") : "";
		if (row.sig === sig && sig !== "")
			return;
		row.sig = sig;
		const c = row.cells;
		if (!d) {
			setText(c.status, "…");
			return;
		}
		setText(c.submitted, when(d.created_at));
		clear(c.status);
		c.status.append(badge("status", d.status));
		clear(c.progress);
		c.progress.append(setProgress(el("progress", { "aria-hidden": "true" }), d),
		    el("span", null, modulesLine(d)));
		setText(c.projects, num(Object.keys(d.projects || {}).length));
		setText(c.passed, num(d.passed));
		setFailed(c.failed, d.failed);
		setText(c.skipped, num(d.skipped));
		setText(c.grade, grade(d.nota_final));
		setText(c.elapsed, seconds(d.elapsed_seconds));
	}

	async function refreshList() {
		let ids;
		try {
			ids = (await api("/evaluation")).evaluations || [];
		} catch (e) {
			setLive("Cannot read the evaluations: " + e.message);
			return;
		}
		ids = ids.slice().reverse();
		const shown = ids.slice(0, list.limit);
		const stale = shown.filter(function (id) {
			const d = list.docs.get(id);
			return !d || d.status === "running";
		});
		await fetchAll(stale, async function (id) {
			try {
				list.docs.set(id, await api("/evaluation/" + encodeURIComponent(id)));
			} catch (e) {
				/* not here yet (replication): shown as "…" until it is */
			}
		});
		const body = $("list-body");
		for (const id of shown) {
			let row = list.rows.get(id);
			if (!row) {
				row = listRow(id);
				list.rows.set(id, row);
			}
			listRowUpdate(row, list.docs.get(id));
		}
		place(body, list, shown, function (id) {
			return list.rows.get(id).tr;
		});
		$("list-empty").hidden = ids.length > 0;
		$("list-table").hidden = ids.length === 0;
		const more = $("list-more");
		more.hidden = ids.length <= list.limit;
		setText(more, "Show all " + ids.length + " evaluations");
		const running = shown.some(function (id) {
			const d = list.docs.get(id);
			return d && d.status === "running";
		});
		setLive(running ? "Updating every " + LIST_POLL_MS / 1000 + " s" : "Up to date");
	}

	function showList() {
		showView("view-list", "Evaluations");
		every(LIST_POLL_MS, refreshList);
	}

	/* ---------------------------------------------------- evaluation */

	const evalView = { id: null, doc: null, rows: new Map(), order: "" };

	function projectHref(evalId, pid) {
		return "#/evaluation/" + encodeURIComponent(evalId) + "/project/" + encodeURIComponent(pid);
	}

	function problems(p) {
		const out = [];
		if (p.error)
			out.push(el("p", { class: "error" }, "Error: " + p.error));
		const w = p.warnings || [];
		if (w.length) {
			const ul = el("ul");
			for (const line of w)
				ul.append(el("li", null, line));
			out.push(el("details", { class: "warnings" },
			    el("summary", null, w.length + (w.length === 1 ? " warning" : " warnings")), ul));
		}
		return out;
	}

	function evalRow(pid) {
		const nums = ["passed", "failed", "skipped", "grade"];
		const row = keyedRow("data-project", pid, el("a", { href: projectHref(evalView.id, pid) },
		    pid), ["state"].concat(nums, ["problems"]), nums);
		return Object.assign(row, { bad: false, text: pid.toLowerCase() });
	}

	function evalRowUpdate(row, p) {
		const sig = JSON.stringify(p);
		if (sig === row.sig)
			return;
		row.sig = sig;
		row.bad = !!p.error || (p.failed || 0) > 0;
		const c = row.cells;
		clear(c.state);
		c.state.append(badge("state", p.error ? "error" : p.state || "pending"));
		setText(c.passed, num(p.passed));
		setFailed(c.failed, p.failed);
		setText(c.skipped, num(p.skipped));
		setText(c.grade, grade(p.grade));
		clear(c.problems);
		c.problems.append(...problems(p));
	}

	function applyFilter() {
		const q = $("eval-filter").value.trim().toLowerCase();
		const onlyBad = $("eval-only-bad").checked;
		let shown = 0;
		for (const row of evalView.rows.values()) {
			const hide = (q !== "" && !row.text.includes(q)) || (onlyBad && !row.bad);
			if (row.tr.hidden !== hide)
				row.tr.hidden = hide;
			if (!hide)
				shown++;
		}
		setText($("eval-shown"), "showing " + shown + " of " + evalView.rows.size);
	}

	function renderEvalSummary(d) {
		const box = $("eval-summary");
		clear(box);
		setProgress($("eval-bar"), d);
		setText($("eval-progress"), modulesLine(d));
		box.append(facts([
			["Status", badge("status", d.status)],
			["Tests", d.passed + " passed (" + percent(d.percent_passed) + "), " + d.failed
			    + " failed, " + d.skipped + " skipped"],
			["Grade (mean)", grade(d.nota_final) + " / 20"],
			["Elapsed", seconds(d.elapsed_seconds)],
			["Submitted", when(d.created_at)],
			["Accepted by", d.accepted_by || "–"],
			["Kind", d.kind || "–"],
		]));
	}

	async function refreshEval() {
		const id = evalView.id, my = gen;
		let d;
		try {
			d = await api("/evaluation/" + encodeURIComponent(id));
		} catch (e) {
			if (my === gen)
				viewError("eval-error", e);
			return;
		}
		if (my === gen)
			renderEval(d);
	}

	function renderEval(d) {
		viewError("eval-error", null);
		evalView.doc = d;
		list.docs.set(d.id || evalView.id, d);
		renderEvalSummary(d);
		const running = d.status === "running";
		if (!running)
			$("eval-confirm").hidden = true;
		$("eval-actions").hidden = !running;
		const pids = Object.keys(d.projects || {});
		for (const pid of pids) {
			let row = evalView.rows.get(pid);
			if (!row) {
				row = evalRow(pid);
				evalView.rows.set(pid, row);
			}
			evalRowUpdate(row, d.projects[pid]);
		}
		place($("eval-body"), evalView, pids, function (pid) {
			return evalView.rows.get(pid).tr;
		});
		applyFilter();
	}

	/*
	 * Cancel, after a second click: POST /evaluation/<id>/cancel answers the
	 * status document (200 cancelled, 202 while a module is being stopped) or
	 * an error (409: it is over already).
	 */
	async function cancelEval() {
		const id = evalView.id, my = gen, msg = $("eval-cancel-msg");
		$("eval-confirm").hidden = true;
		$("eval-cancel").disabled = true;
		try {
			const d = await api("/evaluation/" + encodeURIComponent(id) + "/cancel",
			    { method: "POST" });
			if (my === gen && evalView.id === id)
				renderEval(d);
			msg.hidden = true;
		} catch (e) {
			msg.hidden = false;
			setText(msg, "Cannot cancel it: " + e.message);
		}
		$("eval-cancel").disabled = false;
	}

	function showEval(id) {
		showView("view-eval", "Evaluation " + id.slice(0, 8));
		if (evalView.id !== id) {
			$("eval-actions").hidden = true;
			$("eval-confirm").hidden = true;
			$("eval-cancel-msg").hidden = true;
			evalView.id = id;
			evalView.doc = null;
			evalView.rows = new Map();
			evalView.order = "";
			clear($("eval-body"));
			clear($("eval-summary"));
			$("eval-filter").value = "";
			$("eval-only-bad").checked = false;
		}
		const title = $("eval-title");
		clear(title);
		title.append("Evaluation ", el("code", null, id));
		viewError("eval-error", null);
		follow(id, refreshEval, function () {
			return !evalView.doc || evalView.doc.status === "running";
		});
	}

	/* ------------------------------------------------------- project */

	const projectView = { evalId: null, pid: null, doc: null, mods: new Map(), order: "" };

	function testsTable(m) {
		const tbody = el("tbody");
		const frag = document.createDocumentFragment();
		for (const t of m.tests || []) {
			const msg = t.message ? el("pre", { class: "message" }, t.message) : "";
			frag.append(el("tr", { "data-nodeid": t.nodeid },
			    el("td", null, badge("outcome", t.outcome)),
			    el("th", { scope: "row", class: "nodeid" }, t.nodeid),
			    el("td", { class: "num" }, seconds(t.duration)),
			    el("td", { class: "msg" }, msg)));
		}
		tbody.append(frag);
		return el("table", { class: "grid tests" },
		    el("thead", null, el("tr", null,
			el("th", { scope: "col" }, "Outcome"),
			el("th", { scope: "col" }, "Test"),
			el("th", { scope: "col", class: "num" }, "Duration"),
			el("th", { scope: "col" }, "Message"))),
		    tbody);
	}

	function output(name, text, dropped) {
		if (!text)
			return null;
		const note = dropped ? " (" + dropped + " more bytes not kept)" : "";
		return el("details", { class: "output" }, el("summary", null, name + note),
		    el("pre", null, text));
	}

	function moduleSection(m) {
		const done = !!m.outcome;
		const word = done ? m.outcome : m.state || "pending";
		const bad = done && (m.outcome !== "finished" || (m.failed || 0) > 0 || (m.errors || 0) > 0);
		const sec = el("section", { class: "module", "data-module": m.module });
		sec.append(el("h3", null, badge("outcome", word), " ", el("span", { class: "path" },
		    m.path || m.module)));
		const meta = [];
		if (done) {
			meta.push(["Tests", m.passed + " passed, " + m.failed + " failed, " + m.skipped
			    + " skipped"]);
			meta.push(["Node", m.node || (m.reused ? "reused" : "–")]);
			meta.push(["Duration", seconds(m.duration)]);
			meta.push(["Attempt", num(m.attempt)]);
			if (m.reused)
				meta.push(["Reused from", m.reused_from || "an earlier evaluation"]);
			if (m.flaky)
				meta.push(["Flaky", "yes: passed on a rerun"]);
			if (m.session)
				meta.push(["Session", "shared by " + m.session.modules + " modules"]);
		} else {
			meta.push(["Attempts", num(m.attempts)]);
		}
		sec.append(facts(meta));
		if (m.message)
			sec.append(el("pre", { class: "message module-message" }, m.message));
		if (done && (m.tests || []).length) {
			const n = m.tests.length;
			const det = el("details", { class: "tests-box" },
			    el("summary", null, n + (n === 1 ? " test" : " tests")), testsTable(m));
			det.open = bad;
			sec.append(det);
		}
		for (const o of [output("Standard output", m.stdout, m.stdout_dropped),
		    output("Standard error", m.stderr, m.stderr_dropped)])
			if (o)
				sec.append(o);
		return sec;
	}

	function renderProjectSummary(p) {
		const box = $("project-summary");
		clear(box);
		box.append(facts([
			["State", badge("state", p.error ? "error" : p.state || "pending")],
			["Tests", num(p.passed) + " passed, " + num(p.failed) + " failed, " + num(p.skipped)
			    + " skipped"],
			["Grade", grade(p.grade) + " / 20"],
			["Source", p.source || "–"],
			["Commit", p.commit ? el("code", null, p.commit) : null],
		]));
		if (p.error)
			box.append(el("h2", null, "Error"), el("pre", { class: "message error-text" }, p.error));
		if ((p.warnings || []).length) {
			const ul = el("ul", { class: "warning-list" });
			for (const w of p.warnings)
				ul.append(el("li", null, w));
			box.append(el("h2", null, "Warnings"), ul);
		}
	}

	async function refreshProject() {
		const my = gen, v = projectView;
		let d;
		try {
			d = await api("/evaluation/" + encodeURIComponent(v.evalId) + "/results");
		} catch (e) {
			if (my === gen)
				viewError("project-error", e);
			return;
		}
		if (my !== gen)
			return;
		v.doc = d;
		const p = (d.projects || []).find(function (x) {
			return x.project_id === v.pid;
		});
		if (!p) {
			viewError("project-error", new ApiError(404, "no such project"));
			return;
		}
		viewError("project-error", null);
		renderProjectSummary(p);
		const box = $("project-modules");
		const mods = p.modules || [];
		const keys = [];
		for (const m of mods) {
			const key = m.module || m.path;
			const sig = JSON.stringify(m);
			let cur = v.mods.get(key);
			if (!cur || cur.sig !== sig) {
				const sec = moduleSection(m);
				/* Keep what the reader opened. */
				if (cur) {
					const was = cur.sec.querySelector("details.tests-box");
					const now = sec.querySelector("details.tests-box");
					if (was && now && was.open)
						now.open = true;
					cur.sec.replaceWith(sec);
				}
				cur = { sec, sig };
				v.mods.set(key, cur);
			}
			keys.push(key);
		}
		place(box, v, keys, function (k) {
			return v.mods.get(k).sec;
		});
		if (!mods.length && !box.firstChild)
			box.append(el("p", { class: "muted" }, "No modules yet."));
	}

	function showProject(evalId, pid) {
		showView("view-project", pid);
		const v = projectView;
		if (v.evalId !== evalId || v.pid !== pid) {
			Object.assign(v, { evalId, pid, doc: null, mods: new Map(), order: "" });
			clear($("project-modules"));
			clear($("project-summary"));
		}
		const link = $("project-eval-link");
		link.href = "#/evaluation/" + encodeURIComponent(evalId);
		setText(link, "evaluation " + evalId.slice(0, 8));
		setText($("project-title"), pid);
		viewError("project-error", null);
		follow(evalId, refreshProject, function () {
			return !v.doc || v.doc.status === "running";
		});
	}

	/* ------------------------------------------------------- network */

	const net = { rows: new Map(), order: "" };

	function netRow(addr) {
		const nums = ["modules", "passed", "failed"];
		return keyedRow("data-address", addr, el("code", null, addr),
		    ["state", "since", "talks"].concat(nums), nums);
	}

	async function refreshNetwork() {
		let peers, stats, health, graph;
		try {
			[peers, stats, health, graph] = await Promise.all([api("/network/peers"),
			    api("/stats"), api("/health"), api("/network")]);
		} catch (e) {
			setLive("Cannot reach this node: " + e.message);
			return;
		}
		setLive("Updating every " + NETWORK_POLL_MS / 1000 + " s");
		const members = (peers.members || []).slice().sort(function (a, b) {
			return a.address < b.address ? -1 : a.address > b.address ? 1 : 0;
		});
		const byAddr = new Map((stats.nodes || []).map(function (n) {
			return [n.address, n];
		}));
		const counts = {};
		for (const m of members) {
			counts[m.state] = (counts[m.state] || 0) + 1;
			let row = net.rows.get(m.address);
			if (!row) {
				row = netRow(m.address);
				net.rows.set(m.address, row);
			}
			const s = byAddr.get(m.address);
			const talks = graph[m.address];
			const c = row.cells;
			const sig = [m.state, m.incarnation].join("|");
			if (sig !== row.sig) {
				clear(c.state);
				c.state.append(badge("state", m.state));
				row.sig = sig;
			}
			setText(c.since, ago(m.since));
			setText(c.talks, Array.isArray(talks) ? (talks.length ? talks.join(", ") : "none")
			    : "–");
			setText(c.modules, s ? num(s.modules) : "–");
			setText(c.passed, s ? num(s.passed) : "–");
			setFailed(c.failed, s ? s.failed : null);
		}
		place($("network-body"), net, members.map(function (m) {
			return m.address;
		}), function (addr) {
			return net.rows.get(addr).tr;
		});
		const all = stats.all || {};
		const sum = $("network-summary");
		clear(sum);
		sum.append(facts([
			["Nodes", (counts.alive || 0) + " alive, " + (counts.suspect || 0) + " suspect, "
			    + (counts.dead || 0) + " dead" + (counts.left ? ", " + counts.left + " left" : "")],
			["Evaluations", num(all.evaluations)],
			["Projects", num(all.projects)],
			["Tests", num(all.passed) + " passed, " + num(all.failed) + " failed"],
		]));
		const hb = $("network-health");
		clear(hb);
		hb.append(facts([
			["Address", el("code", null, health.address || "–")],
			["Slots", typeof health.slots_busy === "number" ? health.slots_busy + " busy of "
			    + health.slots : num(health.slots)],
			["Slot time", seconds(health.slot_busy_seconds)],
			["Warm workers", num(health.warm_workers)],
			["Sandbox", (health.sandbox || "–") + (health.isolated ? ", isolated" : "")],
			["Version", health.version || "–"],
		]));
	}

	function showNetwork() {
		showView("view-network", "Network");
		every(NETWORK_POLL_MS, refreshNetwork);
	}

	/* -------------------------------------------------------- routing */

	function route(focus) {
		leave();
		const h = location.hash || "#/";
		let m;
		if ((m = /^#\/evaluation\/([^/]+)\/project\/(.+)$/.exec(h)))
			showProject(decodeURIComponent(m[1]), decodeURIComponent(m[2]));
		else if ((m = /^#\/evaluation\/([^/]+)\/?$/.exec(h)))
			showEval(decodeURIComponent(m[1]));
		else if (h === "#/network")
			showNetwork();
		else
			showList();
		if (focus)
			$("main").focus();
	}

	function start() {
		$("list-more").addEventListener("click", function () {
			list.limit = Infinity;
			leave();
			showList();
		});
		$("eval-filter").addEventListener("input", applyFilter);
		$("eval-cancel").addEventListener("click", function () {
			$("eval-confirm").hidden = false;
			$("eval-cancel-yes").focus();
		});
		$("eval-cancel-no").addEventListener("click", function () {
			$("eval-confirm").hidden = true;
			$("eval-cancel").focus();
		});
		$("eval-cancel-yes").addEventListener("click", cancelEval);
		$("eval-only-bad").addEventListener("change", applyFilter);
		window.addEventListener("hashchange", function () {
			route(true);
		});
		api("/health").then(function (h) {
			setText($("node-address"), h.address || location.host);
		}, function () {
			setText($("node-address"), location.host);
		});
		route(false);
	}

	start();
})();
