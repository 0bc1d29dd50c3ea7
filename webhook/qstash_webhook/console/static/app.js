// qstash-operator console: a small page over the webhook's JSON (/ui/api/...).
//
// Rules this file keeps, and why:
// - the bearer token lives in this tab's sessionStorage only and travels in the Authorization
//   header; never in a URL, a cookie or the DOM, so nothing ambient can be replayed (no CSRF);
// - text reaches the page through textContent only (no innerHTML, no eval): the server's strings
//   can never become markup, and the Content-Security-Policy forbids inline script and style;
// - the server decides everything (words, times, which buttons work and why not); this file
//   only places it, so the logic stays in the tested view model.

const TOKEN_KEY = "qstash-operator.token";
const API = "api";

const main = document.getElementById("main");
const who = document.getElementById("who");
const signOut = document.getElementById("sign-out");

// -- DOM helpers ---------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...nodes) {
  main.replaceChildren(...nodes.flat().filter((node) => node !== null && node !== undefined && node !== false));
}

function focusHeading() {
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

function when(moment, { both = true } = {}) {
  if (!moment) return el("span", { class: "muted", text: "—" });
  return el(
    "time",
    { datetime: moment.iso, title: moment.utc },
    el("span", { text: moment.local }),
    both && moment.local !== moment.utc ? el("span", { class: "utc", text: moment.utc }) : null,
    el("span", { class: "muted rel", text: moment.relative }),
  );
}

function badge(text, kind) {
  return el("span", { class: `badge badge-${kind}`, text });
}

function table(caption, headers, rows, { id } = {}) {
  return el(
    "table",
    { id },
    el("caption", { text: caption }),
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, rows),
  );
}

// -- the API -------------------------------------------------------------------------------

class Refused extends Error {
  constructor(status, body) {
    super(body.error || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function call(method, path, { body, bearer = token() } = {}) {
  const headers = { Accept: "application/json", Authorization: `Bearer ${bearer}` };
  const options = { method, headers, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`${API}/${path}`, options);
  } catch (error) {
    throw new Refused(0, { error: "the webhook did not answer (is it running?)", reason: "Unreachable" });
  }
  let payload = {};
  try {
    payload = await response.json();
  } catch (error) {
    payload = { error: `HTTP ${response.status} without a JSON body` };
  }
  if (response.status === 401 && path !== "session") {
    sessionStorage.removeItem(TOKEN_KEY);
    signIn(`Signed out: ${payload.error || "the token is no longer accepted"}.`);
    throw new Refused(401, payload);
  }
  if (!response.ok) throw new Refused(response.status, payload);
  return { status: response.status, body: payload };
}

function refusal(error) {
  const what = {
    0: "Could not reach the webhook",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    409: "Not run",
    422: "Refused",
  }[error.status] || `Failed (HTTP ${error.status})`;
  return `${what}: ${error.message}`;
}

// -- sign-in -------------------------------------------------------------------------------

function signIn(message) {
  who.hidden = true;
  signOut.hidden = true;
  const input = el("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "token-help",
  });
  const error = el("p", { id: "sign-in-error", class: "error", role: "alert" });
  if (message) error.textContent = message;
  const form = el(
    "form",
    { id: "sign-in", class: "card", method: "post", action: "#", novalidate: true },
    el("h1", { text: "Sign in" }),
    el("label", { for: "token", text: "Kubernetes bearer token" }),
    input,
    el(
      "p",
      { id: "token-help", class: "muted" },
      "A token the cluster accepts, e.g. ",
      el("code", { text: "kubectl create token <serviceaccount> --audience qstash-operator" }),
      ". It is kept in this tab only and sent as an Authorization header; RBAC decides what you may see and do.",
    ),
    el("button", { type: "submit", text: "Sign in" }),
    error,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) {
      error.textContent = "Paste a token first.";
      input.focus();
      return;
    }
    try {
      await call("GET", "session", { bearer: value });
    } catch (failure) {
      error.textContent =
        failure.status === 401 ? `Token refused: ${failure.message}.` : refusal(failure);
      input.focus();
      return;
    }
    input.value = "";
    sessionStorage.setItem(TOKEN_KEY, value);
    if (!location.hash || location.hash === "#") location.hash = "#/";
    route();
  });
  show(form);
  input.focus();
}

signOut.addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  signIn("Signed out.");
});

function signedInAs(user) {
  who.textContent = `Signed in as ${user}`;
  who.hidden = false;
  signOut.hidden = false;
}

// -- the list ------------------------------------------------------------------------------

const OUTCOME_CLASS = {
  Succeeded: "ok",
  CaughtUp: "ok",
  Failed: "bad",
  Missed: "bad",
  Running: "run",
  Pending: "run",
  Due: "run",
  Skipped: "warn",
  NoJob: "none",
};

function readyCell(ready) {
  const kind = ready.status === "True" ? "ok" : ready.status === "False" ? "bad" : "none";
  return el(
    "td",
    { title: ready.message },
    badge(ready.status === "True" ? "Ready" : `${ready.status}`, kind),
    ready.reason && ready.status !== "True" ? el("span", { class: "muted", text: ` ${ready.reason}` }) : null,
  );
}

function lastRunCell(last) {
  if (!last) return el("td", {}, el("span", { class: "muted", text: "never" }));
  return el(
    "td",
    {},
    when(last.time, { both: false }),
    badge(last.outcomeWords, OUTCOME_CLASS[last.outcome] || "none"),
  );
}

function listRow(item, showFreshness) {
  const stateKind = { active: "ok", suspended: "warn", invalid: "bad" }[item.state];
  return el(
    "tr",
    { "data-name": `${item.namespace}/${item.name}` },
    el("th", { scope: "row" }, el("a", { href: item.href, text: item.name })),
    el("td", { text: item.namespace }),
    el(
      "td",
      {},
      el("code", { text: item.schedule }),
      item.scheduleWords ? el("span", { class: "muted words", text: item.scheduleWords }) : null,
    ),
    el("td", { text: item.timeZone }),
    el("td", { text: item.backend || "pending" }),
    el("td", { title: item.problem || "" }, badge(item.state, stateKind)),
    lastRunCell(item.lastRun),
    el("td", {}, item.nextRun ? when(item.nextRun) : el("span", { class: "muted", text: item.state === "suspended" ? "suspended" : "—" })),
    readyCell(item.ready),
    showFreshness
      ? item.freshness
        ? readyCell({ ...item.freshness, status: item.freshness.status })
        : el("td", { class: "muted", text: "—" })
      : null,
  );
}

let listState = { namespace: "", search: "" };

async function listPage() {
  show(el("h1", { text: "CronWorkflows" }), el("p", { role: "status", text: "Loading…" }));
  let data;
  try {
    data = (await call("GET", "cronworkflows")).body;
  } catch (error) {
    if (error.status === 401) return;
    show(el("h1", { text: "CronWorkflows" }), el("p", { class: "error", role: "alert", text: refusal(error) }));
    focusHeading();
    return;
  }
  signedInAs(data.user);
  const namespace = el(
    "select",
    { id: "namespace", name: "namespace" },
    el("option", { value: "", text: "All namespaces" }),
    data.namespaces.map((ns) => el("option", { value: ns, text: ns })),
  );
  namespace.value = data.namespaces.includes(listState.namespace) ? listState.namespace : "";
  const search = el("input", {
    id: "search",
    name: "search",
    type: "search",
    placeholder: "name, namespace or schedule",
    autocomplete: "off",
  });
  search.value = listState.search;
  const count = el("p", { id: "count", role: "status", "aria-live": "polite" });
  const headers = [
    "Name", "Namespace", "Schedule", "Zone", "Backend", "State", "Last run", "Next run (local, UTC)", "Ready",
  ];
  if (data.showFreshness) headers.push("Fresh");
  const rows = data.items.map((item) => ({ item, row: listRow(item, data.showFreshness) }));
  const body = rows.map(({ row }) => row);
  const list = table("CronWorkflows you may list", headers, body, { id: "cronworkflows" });
  const empty = el("p", { class: "muted", text: "No CronWorkflow matches." });

  function filter() {
    listState = { namespace: namespace.value, search: search.value };
    const words = search.value.trim().toLowerCase();
    let shown = 0;
    for (const { item, row } of rows) {
      const haystack = `${item.namespace}/${item.name} ${item.schedule} ${item.scheduleWords || ""}`.toLowerCase();
      const visible = (!namespace.value || item.namespace === namespace.value) && (!words || haystack.includes(words));
      row.hidden = !visible;
      if (visible) shown += 1;
    }
    empty.hidden = shown > 0;
    count.textContent = `${shown} of ${rows.length} CronWorkflows shown`;
  }
  namespace.addEventListener("change", filter);
  search.addEventListener("input", filter);

  show(
    el("h1", { text: "CronWorkflows" }),
    el(
      "form",
      { class: "filters", role: "search", onsubmit: (event) => event.preventDefault() },
      el("div", {}, el("label", { for: "namespace", text: "Namespace" }), namespace),
      el("div", {}, el("label", { for: "search", text: "Search" }), search),
    ),
    data.note ? el("p", { class: "muted", text: data.note }) : null,
    count,
    el("div", { class: "scroll" }, list),
    empty,
    el("p", { class: "muted", text: `As of ${data.time}.` }),
  );
  filter();
  performance.mark("qso:list-rendered");
  focusHeading();
}

// -- one CronWorkflow ------------------------------------------------------------------------

function section(title, id, ...content) {
  return el("section", { "aria-labelledby": id }, el("h2", { id, text: title }), ...content);
}

function timeline(data) {
  if (!data.timeline) {
    return el("p", { class: "muted", text: `Not shown: ${data.timelineDenied}` });
  }
  const legend = el(
    "ul",
    { class: "legend", "aria-label": "Legend" },
    [
      ["ok", "succeeded"], ["bad", "failed or missed"], ["run", "running or due"],
      ["warn", "skipped"], ["none", "no Job left"],
    ].map(([kind, words]) => el("li", {}, el("span", { class: `swatch slot-${kind}` }), words)),
    el("li", {}, el("span", { class: "swatch slot-none manual" }), "manual run (ringed)"),
  );
  const strip = el(
    "ol",
    { class: "timeline", id: "timeline", "aria-label": "Recent slots, oldest first" },
    data.timeline.slots.map((slot) =>
      el(
        "li",
        {
          class: `slot slot-${OUTCOME_CLASS[slot.outcome] || "none"}${slot.manual ? " manual" : ""}`,
          title: slot.label,
          "data-outcome": slot.outcome,
        },
        el("span", { class: "visually-hidden", text: slot.label }),
      ),
    ),
  );
  return el(
    "div",
    {},
    data.timeline.slots.length ? strip : el("p", { class: "muted", text: "No slot yet." }),
    legend,
    el("p", { class: "muted", text: `Timeline ${data.timeline.note}.` }),
  );
}

function actionButton(id, label, state, onPress) {
  const why = `${id}-why`;
  return el(
    "div",
    { class: "action" },
    el("button", {
      id,
      type: "button",
      disabled: !state.enabled,
      "aria-describedby": state.enabled ? null : why,
      onclick: onPress,
      text: label,
    }),
    state.enabled ? null : el("p", { id: why, class: "why", text: state.reason }),
  );
}

function actions(data, ns, name) {
  const result = el("p", { id: "action-result", role: "status", "aria-live": "polite" });
  const path = `cronworkflows/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;

  async function act(what, request, describe) {
    result.className = "";
    result.textContent = `${what}…`;
    try {
      const answer = await request();
      await detailPage(ns, name, describe(answer.body));
    } catch (error) {
      if (error.status === 401) return;
      result.className = "error";
      result.setAttribute("role", "alert");
      result.textContent = refusal(error);
    }
  }

  const reason = el("input", {
    id: "run-reason",
    name: "reason",
    type: "text",
    maxlength: "300",
    required: true,
    autocomplete: "off",
    disabled: !data.actions.run.enabled,
    "aria-describedby": "run-reason-help",
  });
  const run = el(
    "form",
    { id: "run-now", class: "run", novalidate: true },
    el("label", { for: "run-reason", text: "Reason for a manual run" }),
    reason,
    el("p", { id: "run-reason-help", class: "muted", text: "Recorded as an event on the CronWorkflow, with your name." }),
    actionButton("run", "Run now", data.actions.run, null),
  );
  const runButton = run.querySelector("#run");
  runButton.type = "submit";
  run.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = reason.value.trim();
    if (!text) {
      result.className = "error";
      result.textContent = "Say why you run it now (the reason is recorded).";
      reason.focus();
      return;
    }
    act(
      "Starting a run",
      () => call("POST", `${path}/run`, { body: { reason: text } }),
      (body) => `Started Job ${body.job} (asked by ${body.requestedBy}).`,
    );
  });
  return el(
    "div",
    { class: "actions" },
    el(
      "div",
      { class: "toggle" },
      actionButton("activate", "Activate", data.actions.activate, () =>
        act("Activating", () => call("POST", `${path}/activate`), () => "Activated: spec.suspend is false."),
      ),
      actionButton("deactivate", "Deactivate", data.actions.deactivate, () =>
        act("Deactivating", () => call("POST", `${path}/deactivate`), () => "Deactivated: spec.suspend is true."),
      ),
    ),
    run,
    result,
  );
}

async function detailPage(ns, name, flash) {
  const title = `${ns}/${name}`;
  if (!flash) show(el("h1", { text: title }), el("p", { role: "status", text: "Loading…" }));
  let data;
  try {
    data = (await call("GET", `cronworkflows/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`)).body;
  } catch (error) {
    if (error.status === 401) return;
    show(
      el("p", {}, el("a", { href: "#/", text: "← All CronWorkflows" })),
      el("h1", { text: title }),
      el("p", { class: "error", role: "alert", text: refusal(error) }),
    );
    focusHeading();
    return;
  }
  signedInAs(data.user);
  const cw = data.cronWorkflow;
  const panel = actions(data, ns, name);
  if (flash) {
    const result = panel.querySelector("#action-result");
    result.textContent = flash;
    result.className = "done";
  }
  const stateKind = { active: "ok", suspended: "warn", invalid: "bad" }[cw.state];
  show(
    el("nav", { "aria-label": "Breadcrumb" }, el("a", { href: "#/", text: "← All CronWorkflows" })),
    el("h1", { text: title }),
    el(
      "dl",
      { class: "facts" },
      el("dt", { text: "State" }), el("dd", {}, badge(cw.state, stateKind)),
      el("dt", { text: "Schedule" }), el("dd", {}, el("code", { text: cw.schedule }), ` in ${cw.timeZone}`),
      el("dt", { text: "Backend" }), el("dd", { text: cw.backend || "not chosen yet" }),
      el("dt", { text: "Next run" }), el("dd", {}, cw.nextRun ? when(cw.nextRun) : "—"),
      el("dt", { text: "Ready" }), el("dd", { text: `${cw.ready.status} ${cw.ready.reason}: ${cw.ready.message}` }),
      cw.freshness ? [el("dt", { text: "Fresh" }), el("dd", { text: `${cw.freshness.status} ${cw.freshness.reason}: ${cw.freshness.message}` })] : null,
    ),
    section("Recent slots", "h-timeline", timeline(data)),
    section("Actions", "h-actions", panel),
    section("What it does", "h-words", el("ul", { id: "words" }, data.words.map((w) => el("li", { text: w })))),
    section(
      "Next 10 fire times",
      "h-fire",
      data.fireTimes.length
        ? table(
            `Next fire times in ${cw.timeZone} and in UTC`,
            ["#", `Local (${cw.timeZone})`, "UTC", "In", "Note"],
            data.fireTimes.map((t, i) =>
              el("tr", {}, el("td", { text: i + 1 }), el("td", { text: t.local }), el("td", { text: t.utc }), el("td", { text: t.relative }), el("td", { text: t.mark || "" })),
            ),
            { id: "fire-times" },
          )
        : el("p", { class: "muted", text: "None: the spec is invalid." }),
      el("p", { class: "muted", text: data.daylightSaving }),
    ),
    section(
      "Recent Jobs",
      "h-jobs",
      data.jobs.allowed
        ? data.jobs.items.length
          ? table(
              "Recent Jobs, newest first",
              ["Job", "Trigger", "For", "Status", "Duration"],
              data.jobs.items.map((job) =>
                el(
                  "tr",
                  {},
                  el("td", {}, el("code", { text: job.name })),
                  el("td", { text: job.trigger === "manual" ? `manual (${job.requestedBy || "?"})` : "schedule" }),
                  el("td", {}, when(job.scheduled || job.created, { both: false })),
                  el("td", {}, badge(job.outcomeWords, OUTCOME_CLASS[job.outcome] || "none")),
                  el("td", { text: job.duration || "—" }),
                ),
              ),
              { id: "jobs" },
            )
          : el("p", { class: "muted", text: "No Job in the cluster." })
        : el("p", { class: "muted", text: `Not shown: ${data.jobs.denied}` }),
    ),
    section(
      "Conditions",
      "h-conditions",
      table(
        "Status conditions",
        ["Type", "Status", "Reason", "Message", "Since"],
        data.conditions.map((c) =>
          el("tr", {}, el("td", { text: c.type }), el("td", { text: c.status }), el("td", { text: c.reason }), el("td", { text: c.message }), el("td", {}, when(c.since, { both: false }))),
        ),
        { id: "conditions" },
      ),
    ),
    section(
      "Recent events",
      "h-events",
      data.events.allowed
        ? data.events.items.length
          ? table(
              "Events, newest first",
              ["Type", "Reason", "Message", "Count", "Last seen"],
              data.events.items.map((e) =>
                el("tr", {}, el("td", { text: e.type }), el("td", { text: e.reason }), el("td", { text: e.message }), el("td", { text: e.count }), el("td", {}, when(e.last, { both: false }))),
              ),
              { id: "events" },
            )
          : el("p", { class: "muted", text: "No event." })
        : el("p", { class: "muted", text: `Not shown: ${data.events.denied}` }),
    ),
    el("p", { class: "muted", text: `As of ${data.time}.` }),
  );
  if (flash) panel.querySelector("#action-result").focus?.();
  else focusHeading();
  performance.mark("qso:detail-rendered");
}

// -- routing -------------------------------------------------------------------------------

function route() {
  if (!token()) {
    signIn();
    return;
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts[0] === "cronworkflows" && parts.length === 3 && parts[1] && parts[2]) {
    detailPage(parts[1], parts[2]);
  } else {
    listPage();
  }
}

window.addEventListener("hashchange", route);
route();
