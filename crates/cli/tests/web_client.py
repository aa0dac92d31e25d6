"""uma's web page in a real browser: Debian's chromium, headless, driven by playwright.

Run by crates/cli/tests/serve_web.rs against a `uma serve` it started:

    web_client.py --base-url URL --browser PATH --model ID [--other-model ID]
                  --plan-described FILE --plan-stored FILE [--stored-model NAME]
                  --screenshots DIR
    web_client.py --base-url URL --browser PATH --model ID --api-key KEY

The first form checks the page as a user sees it: loading it, picking a model, a streamed answer
(text arriving in pieces, then its token counts and speeds), Enter and Shift+Enter, stopping a
long answer (the server's /health and /metrics show it cancelled and nothing running),
regenerate and edit-and-resend, conversations surviving a reload (rename, export, delete), the
server view's memory bar against /health, the plan view's numbers against `uma plan --json`
(FILE: its output for the same input), a phone-width screen and the dark theme. The second
form checks the API key prompt. Both record every request the browser makes and fail if one
goes anywhere but the serving origin, and fail on any script error or Content-Security-Policy
violation. Screenshots of the chat, server and plan views go to DIR.
"""

import argparse
import json
import re
import sys
import time
import urllib.request
from urllib.parse import urlsplit

from playwright.sync_api import sync_playwright

CHECKS = 0
TIMEOUT_MS = 120_000
SYSTEM_PROMPT = "You are a helpful assistant. Put code in fenced Markdown code blocks."


def check(condition, what):
    global CHECKS
    if not condition:
        raise AssertionError(what)
    CHECKS += 1


def get_json(base, path, key=None):
    request = urllib.request.Request(base + path)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def get_text(base, path):
    with urllib.request.urlopen(base + path, timeout=60) as response:
        return response.read().decode()


def model_stats(base, model):
    health = get_json(base, "/health")
    for entry in health["models"]:
        if entry["model"] == model:
            return entry.get("stats") or {}
    raise AssertionError(f"{model} not in /health: {health}")


def metric(text, name, model):
    pattern = re.compile(r"^" + re.escape(name) + r"\{([^}]*)\} (\S+)$", re.M)
    for labels, value in pattern.findall(text):
        if f'model="{model}"' in labels:
            return float(value)
    return 0.0


def wait_until(what, predicate, timeout_s=60, interval_s=0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what}")


class Browser:
    """One browser context whose every request, response, console error and CSP violation is
    recorded."""

    def __init__(self, playwright, executable, base, **context_options):
        self.base = base
        self.origin = urlsplit(base)
        self.browser = playwright.chromium.launch(executable_path=executable, headless=True)
        self.context = self.browser.new_context(
            viewport=context_options.pop("viewport", {"width": 1280, "height": 820}),
            accept_downloads=True,
            **context_options,
        )
        self.requests = []
        self.statuses = []
        self.errors = []
        self.context.on("request", lambda r: self.requests.append((r.method, r.url, r.headers)))
        self.chat_bodies = []
        self.context.on("request", lambda r: self.chat_bodies.append(json.loads(r.post_data))
                        if urlsplit(r.url).path == "/v1/chat/completions" else None)
        self.context.on("response", lambda r: self.statuses.append((r.status, r.url)))
        # Before any script of the page: CSP violations are events on the document.
        self.context.add_init_script(
            "window.__violations = [];"
            "document.addEventListener('securitypolicyviolation', (e) =>"
            " window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on(
            "console",
            lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
        )

    def open(self):
        self.page.goto(self.base + "/")
        self.page.wait_for_selector("body[data-ready=true]", state="attached")

    def evaluate(self, script, argument=None):
        return self.page.evaluate(script, argument)

    def dialog_open(self):
        return self.evaluate("document.querySelector('#key-dialog').open")

    def finish(self, allowed_errors=()):
        violations = self.evaluate("window.__violations")
        check(violations == [], f"Content-Security-Policy violations: {violations}")
        errors = [e for e in self.errors if not any(a in e for a in allowed_errors)]
        check(errors == [], f"errors in the page: {errors}")
        outside = [
            url for _, url, _ in self.requests
            if urlsplit(url).scheme not in ("blob",)
            and (urlsplit(url).scheme, urlsplit(url).netloc) != (self.origin.scheme, self.origin.netloc)
        ]
        check(self.requests, "the browser made requests")
        check(outside == [], f"requests to other origins: {outside}")
        self.browser.close()


# ---------------------------------------------------------------------------------------------
# Chat


def messages(browser):
    return browser.evaluate(
        """() => [...document.querySelectorAll('#messages article.message')].map((m) => ({
            role: m.classList.contains('user') ? 'user' : 'assistant',
            text: m.querySelector('.content').textContent,
            stats: m.querySelector('.stats') ? {...m.querySelector('.stats').dataset} : null,
        }))"""
    )


def open_settings(browser, wanted):
    if browser.evaluate("document.querySelector('#settings').open") != wanted:
        browser.page.click("#settings summary")


def set_settings(browser, temperature=None, max_tokens=None):
    page = browser.page
    open_settings(browser, True)
    if temperature is not None:
        page.fill("#temperature", str(temperature))
        page.dispatch_event("#temperature", "change")
    page.fill("#max-tokens", "" if max_tokens is None else str(max_tokens))
    page.dispatch_event("#max-tokens", "change")


def send_and_watch(browser, text):
    """Sends `text` with Enter and samples the answer's length while it streams; returns the
    lengths seen before the answer finished."""
    page = browser.page
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")
    lengths = []
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        state = browser.evaluate(
            """() => {
                const answers = document.querySelectorAll('#messages article.assistant');
                const last = answers[answers.length - 1];
                return {
                    length: last ? last.querySelector('.content').textContent.length : 0,
                    done: Boolean(last && last.querySelector('.stats')),
                    stopVisible: !document.querySelector('#stop').hidden,
                };
            }"""
        )
        if state["done"] and not state["stopVisible"]:
            break
        if state["length"] and (not lengths or lengths[-1] != state["length"]):
            lengths.append(state["length"])
        time.sleep(0.03)
    else:
        raise AssertionError(f"no finished answer to {text!r}")
    return lengths


def chat(browser, args):
    page = browser.page
    base = args.base_url
    check(not browser.dialog_open(), "no key prompt without --api-key")

    # The model picker lists /v1/models with status and memory.
    listed = get_json(base, "/v1/models")["data"]
    options = browser.evaluate(
        "[...document.querySelectorAll('#model option')].map((o) => [o.value, o.textContent])"
    )
    check([value for value, _ in options] == [m["id"] for m in listed], f"picker {options}")
    for (value, label), model in zip(options, listed):
        check(model["status"] in label, f"status of {value} in {label!r}")
    page.select_option("#model", args.model)

    # Shift+Enter starts a new line and sends nothing.
    page.fill("#prompt", "line one")
    page.press("#prompt", "Shift+Enter")
    page.keyboard.type("line two")
    check(page.input_value("#prompt") == "line one\nline two", "Shift+Enter adds a line")
    check(len(messages(browser)) == 0, "Shift+Enter sends nothing")
    page.fill("#prompt", "")

    # A streamed answer: the text grows in several steps, then counts and speeds appear.
    set_settings(browser, temperature=0, max_tokens=40)
    stats_before = model_stats(base, args.model)
    lengths = send_and_watch(browser, "Write a short poem about memory, four lines.")
    shown = messages(browser)
    check(len(shown) == 2 and shown[1]["role"] == "assistant", f"one answer: {shown}")
    check(len(lengths) >= 3 and lengths == sorted(lengths), f"text streamed in pieces: {lengths}")
    answer = shown[1]
    check(answer["text"].strip() != "", "the answer has text")
    stats = answer["stats"]
    check(stats is not None, "counts under the answer")
    prompt_tokens, generated = int(stats["promptTokens"]), int(stats["completionTokens"])
    check(0 < generated <= 40, f"generated tokens {generated}")
    stats_after = model_stats(base, args.model)
    check(stats_after["num_generated_tokens"] - stats_before["num_generated_tokens"] == generated,
          "the page's generated count is the server's")
    check(stats_after["num_prompt_tokens"] - stats_before["num_prompt_tokens"] == prompt_tokens,
          "the page's prompt count is the server's")
    check(float(stats["ttftMs"]) > 0, "time to first token")
    check(float(stats["tokensPerSecond"]) > 0, "tokens per second")
    line = page.text_content("#messages article.assistant .stats")
    check(f"prompt {prompt_tokens} tokens" in line and f"{generated} generated" in line, line)
    check("first token" in line and "tok/s" in line, line)

    # A code answer: Markdown with a highlighted code block and a copy button; with a system
    # prompt, which goes first in the request.
    set_settings(browser, max_tokens=120)
    page.fill("#system-prompt", SYSTEM_PROMPT)
    page.dispatch_event("#system-prompt", "change")
    send_and_watch(browser, "Write a Python function that reverses a string. Only the code block.")
    sent = browser.chat_bodies[-1]
    check(sent["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}, f"{sent}")
    check(sent["messages"][-1]["content"].startswith("Write a Python function"), f"{sent}")
    check(len(sent["messages"]) == 4, "the conversation so far goes with the question")
    check(sent["stream"] is True and sent["stream_options"] == {"include_usage": True}, f"{sent}")
    check(sent["model"] == args.model and sent["max_tokens"] == 120 and sent["temperature"] == 0,
          f"settings sent: {sent}")
    blocks = page.locator("#messages article.assistant .code-block")
    check(blocks.count() >= 1, "a code block")
    check(blocks.first.locator("button.copy").count() == 1, "a copy button on the code block")
    check(blocks.first.locator("span.tok-keyword").count() >= 1, "highlighted keywords")
    # The same question again reuses the cached prefix of the conversation (counted in the line).

    # Stop a long answer with the Stop button; the server cancels it. (Without the system
    # prompt, the model counts for long: each number is its own line.)
    page.fill("#system-prompt", "")
    page.dispatch_event("#system-prompt", "change")
    set_settings(browser, max_tokens=1500)
    before = model_stats(base, args.model)
    metrics_before = get_text(base, "/metrics")
    page.fill("#prompt", "Count from 1 to 1000, one number per line, nothing else.")
    page.press("#prompt", "Enter")
    wait_until("streamed text", lambda: len(messages(browser)[-1]["text"]) > 20)
    check(page.is_visible("#stop") and not page.is_visible("#send"), "Stop replaces Send")
    page.click("#stop")
    page.wait_for_selector("#send", state="visible")
    stopped = messages(browser)[-1]
    check(stopped["stats"] is not None and "stopped" in page.text_content(
        "#messages article.assistant:last-of-type .stats"), "the answer says stopped")
    after = wait_until(
        "the server to cancel the request",
        lambda: (lambda s: s if s["num_cancelled_requests"] == before["num_cancelled_requests"] + 1
                 and s["num_running"] == 0 else None)(model_stats(base, args.model)),
        timeout_s=20,
    )
    generated_by_stopped = after["num_generated_tokens"] - before["num_generated_tokens"]
    check(generated_by_stopped < 1500, f"cut short: {generated_by_stopped} tokens")
    metrics_after = get_text(base, "/metrics")
    check(metric(metrics_after, "uma_running_sequences", args.model) == 0,
          "/metrics: nothing running after the stop")
    check(metric(metrics_after, "uma_generated_tokens_total", args.model)
          - metric(metrics_before, "uma_generated_tokens_total", args.model) < 1500,
          "/metrics: fewer tokens than asked for")

    # Esc stops too.
    before = model_stats(base, args.model)
    page.fill("#prompt", "Count from 1000 down to 1, one number per line.")
    page.press("#prompt", "Enter")
    wait_until("streamed text", lambda: len(messages(browser)[-1]["text"]) > 10)
    page.keyboard.press("Escape")
    page.wait_for_selector("#send", state="visible")
    wait_until(
        "the server to cancel the second request",
        lambda: model_stats(base, args.model)["num_cancelled_requests"]
        == before["num_cancelled_requests"] + 1,
        timeout_s=20,
    )

    # Regenerate the stopped answer, short this time.
    set_settings(browser, max_tokens=12)
    count = len(messages(browser))
    page.click("#messages article.assistant:last-of-type button.regenerate")
    page.wait_for_selector("#send", state="visible")
    wait_until("the regenerated answer",
               lambda: messages(browser)[-1]["stats"] is not None and page.is_visible("#send"))
    check(len(messages(browser)) == count, "regenerate replaces the last answer")
    check(int(messages(browser)[-1]["stats"]["completionTokens"]) <= 12, "a new, short answer")

    # Edit the last question and send it again: the answer after it is replaced.
    page.click("#messages article.user:nth-last-of-type(2) button.edit")
    page.fill("#messages textarea.edit-area", "Say only the word yes.")
    page.press("#messages textarea.edit-area", "Enter")
    wait_until("the answer to the edited question",
               lambda: messages(browser)[-1]["stats"] is not None and page.is_visible("#send")
               and messages(browser)[-2]["text"] == "Say only the word yes.")
    check(len(messages(browser)) == count, "edit-and-resend keeps the conversation's length")
    return messages(browser)


def conversations(browser, shown, screenshots):
    page = browser.page
    titles = lambda: browser.evaluate(  # noqa: E731
        "[...document.querySelectorAll('#conversations .conversation-title')].map((b) => b.textContent)"
    )
    check(titles() == ["Write a short poem about memory, four lines."], f"one conversation {titles()}")

    # Reload: the conversation comes back from localStorage, message for message.
    page.reload()
    page.wait_for_selector("body[data-ready=true]", state="attached")
    check(titles() == ["Write a short poem about memory, four lines."], "listed after a reload")
    again = messages(browser)
    check([(m["role"], m["text"]) for m in again] == [(m["role"], m["text"]) for m in shown],
          "every message after a reload")

    # Rename.
    page.click("#conversations .conversation.current button:has-text('Rename')")
    page.fill("#conversations .rename-input", "Poems and code")
    page.press("#conversations .rename-input", "Enter")
    check(titles() == ["Poems and code"], f"renamed: {titles()}")

    # Export as JSON: the conversation with its messages.
    open_settings(browser, True)
    with page.expect_download() as download:
        page.click("#export-chat")
    exported = json.loads(open(download.value.path(), encoding="utf-8").read())
    check(exported["title"] == "Poems and code", "exported title")
    check(len(exported["messages"]) == len(shown), "every message exported")
    check([m["content"] for m in exported["messages"] if m["role"] == "user"]
          == [m["text"] for m in shown if m["role"] == "user"], "the questions exported")

    # The chat screenshot: the conversation with its code block.
    open_settings(browser, False)
    page.evaluate("document.querySelector('#messages').scrollTop = 0")
    page.screenshot(path=f"{screenshots}/chat.png")

    # A second conversation, then deleted (two clicks: the first asks).
    page.click("#new-chat")
    check(len(messages(browser)) == 0, "a new chat is empty")
    set_settings(browser, max_tokens=4)
    send_and_watch(browser, "Hi")
    check(len(titles()) == 2, "two conversations")
    page.click("#conversations .conversation.current button:has-text('Delete')")
    page.click("#conversations .conversation.current button:has-text('Sure?')")
    check(titles() == ["Poems and code"], f"deleted: {titles()}")
    page.click("#conversations .conversation-title")
    check(len(messages(browser)) == len(shown), "the first conversation is still whole")


HOSTILE = (
    "# Title\n\nSome **bold** and `code` and a [link](https://example.org/page).\n\n"
    "- one\n- two\n  - nested\n\n| a | b |\n|---|--:|\n| 1 | 2 |\n\n"
    "<script>window.__owned = 1</script> <img src=x onerror=\"window.__owned = 2\">\n\n"
    "[click](javascript:window.__owned=3) ![pixel](https://tracker.example/pixel.png)\n\n"
    "```html\n<b onmouseover=\"window.__owned = 4\">hi</b>\n```\n"
)


def hostile_markdown(browser):
    """Model output that tries to become markup, script or a request stays text."""
    page = browser.page
    conversation = {
        "id": "hostile", "title": "<b>hostile</b>", "created": 1, "updated": 1, "model": "",
        "system": "", "messages": [
            {"role": "user", "content": "<img src=x onerror=\"window.__owned = 5\">"},
            {"role": "assistant", "content": HOSTILE},
        ],
    }
    page.evaluate(
        """(c) => {
            const all = JSON.parse(localStorage.getItem('uma.conversations') || '[]');
            all.push(c);
            localStorage.setItem('uma.conversations', JSON.stringify(all));
        }""",
        conversation,
    )
    page.reload()
    page.wait_for_selector("body[data-ready=true]", state="attached")
    page.click("#conversations li[data-id=hostile] .conversation-title")
    page.wait_for_selector("#messages article.assistant .markdown h3")
    time.sleep(0.5)  # time for any handler that got in to fire
    found = browser.evaluate(
        """() => {
            const answer = document.querySelector('#messages article.assistant .markdown');
            const user = document.querySelector('#messages article.user .content');
            return {
                owned: window.__owned || null,
                tags: [...document.querySelectorAll('#messages *')].map((e) => e.tagName.toLowerCase()),
                links: [...answer.querySelectorAll('a')].map((a) => [a.getAttribute('href'), a.textContent]),
                text: answer.textContent,
                user: user.textContent,
                title: document.querySelector('#conversations li[data-id=hostile] .conversation-title').textContent,
                cells: [...answer.querySelectorAll('td')].map((td) => td.textContent),
                items: answer.querySelectorAll('li').length,
                nested: answer.querySelectorAll('li ul li').length,
                code: answer.querySelector('.code-block code').textContent,
                handlers: [...document.querySelectorAll('#messages *')].filter((e) =>
                    [...e.attributes].some((a) => a.name.startsWith('on'))).length,
            };
        }"""
    )
    check(found["owned"] is None, f"no script ran: {found['owned']}")
    for tag in ("script", "img", "b"):
        check(tag not in found["tags"], f"no <{tag}> element from model text")
    check(found["handlers"] == 0, "no event-handler attributes")
    check(found["links"] == [["https://example.org/page", "link"],
                             ["https://tracker.example/pixel.png", "[image: pixel]"]],
          f"only safe links, the image not loaded: {found['links']}")
    check("<script>window.__owned = 1</script>" in found["text"], "markup shown as text")
    check("click" in found["text"], "an unsafe link keeps its label")
    check(found["user"] == conversation["messages"][0]["content"], "the question shown as typed")
    check(found["title"] == "<b>hostile</b>", "the title shown as typed")
    check(found["cells"] == ["1", "2"], f"table {found['cells']}")
    check(found["items"] == 3 and found["nested"] == 1, "nested list")
    check('<b onmouseover="window.__owned = 4">hi</b>' in found["code"], "code kept as text")
    page.click("#conversations li[data-id=hostile] button:has-text('Delete')")
    page.click("#conversations li[data-id=hostile] button:has-text('Sure?')")


# ---------------------------------------------------------------------------------------------
# Server view


def server_view(browser, args):
    page = browser.page
    page.click("button.tab[data-view=server]")
    page.wait_for_selector("#memory-bar .segment.free", state="attached")
    # Idle: /health does not change between the page's refresh and ours.
    time.sleep(2.5)
    health = get_json(args.base_url, "/health")
    bar = browser.evaluate(
        """() => {
            const bar = document.querySelector('#memory-bar');
            const width = bar.getBoundingClientRect().width;
            return {
                budget: Number(bar.dataset.budgetBytes),
                held: Number(bar.dataset.heldBytes),
                segments: [...bar.querySelectorAll('.segment')].map((s) => ({
                    kind: s.dataset.kind, model: s.dataset.model, bytes: Number(s.dataset.bytes),
                    share: s.getBoundingClientRect().width / width,
                })),
            };
        }"""
    )
    budget = health["memory_budget_bytes"]
    check(bar["budget"] == budget and bar["held"] == health["memory_held_bytes"], f"{bar} {health}")
    expected = []
    for model in health["models"]:
        if model["status"] == "resident":
            kv = model["kv_cache_bytes"]
            expected.append(("weights", model["model"], model["memory_bytes"] - kv))
            expected.append(("kv", model["model"], kv))
        elif model["status"] == "loading":
            expected.append(("loading", model["model"], model["memory_bytes"]))
    expected.append(("free", "", budget - health["memory_held_bytes"]))
    got = [(s["kind"], s["model"], s["bytes"]) for s in bar["segments"]]
    check(got == expected, f"memory bar {got} against /health {expected}")
    for segment in bar["segments"]:
        share = segment["bytes"] / budget
        # Within a pixel and a half of the bar's width (borders, rounding).
        check(abs(segment["share"] - share) < 0.005, f"segment width {segment} for {share:.4f}")
    resident = [m for m in health["models"] if m["status"] == "resident"]
    check(resident, "a resident model")
    for model in resident:
        card = browser.evaluate(
            "(name) => ({...[...document.querySelectorAll('#server-models .card')]"
            ".find((c) => c.dataset.model === name).dataset})",
            model["model"],
        )
        stats = model["stats"]
        check(card["status"] == "resident", f"{card}")
        check(int(card["running"]) == stats["num_running"], f"running {card} {stats}")
        check(int(card["waiting"]) == stats["num_waiting"], f"queued {card} {stats}")
        check(int(card["usedBlocks"]) == stats["kv_num_used_blocks"], f"used blocks {card}")
        check(int(card["cachedBlocks"]) == stats["kv_num_cached_free_blocks"], f"cached {card}")
        queried = stats["prefix_cache_queried_tokens"]
        ratio = stats["prefix_cache_hit_tokens"] / queried if queried else 0
        check(abs(float(card["hitRatio"]) - ratio) < 1e-9, f"hit ratio {card} {ratio}")
    page.screenshot(path=f"{args.screenshots}/server.png")


# ---------------------------------------------------------------------------------------------
# Plan view


PLAN_FIELDS = {
    "neededBytes": lambda p: p["memory"]["needed_bytes"],
    "usableBytes": lambda p: p["memory"]["usable_bytes"],
    "budgetBytes": lambda p: p["memory"]["budget_bytes"],
    "weightsBytes": lambda p: p["memory"]["breakdown"]["weights_bytes"],
    "kvBytes": lambda p: p["memory"]["breakdown"]["kv_cache_bytes"],
    "scratchBytes": lambda p: p["memory"]["breakdown"]["compute_scratch_bytes"],
    "overheadBytes": lambda p: p["memory"]["breakdown"]["runtime_overhead_bytes"],
    "maxContext": lambda p: p["memory"]["max_context_length"],
    "verdict": lambda p: p["memory"]["verdict"],
    "decodeEmpty": lambda p: p["speed"]["decode_empty_context"]["tokens_per_second"],
    "decode": lambda p: p["speed"]["decode_full_context"]["tokens_per_second"],
    "aggregate": lambda p: p["speed"]["aggregate_decode"]["tokens_per_second"],
    "prefill": lambda p: p["speed"]["prefill"]["tokens_per_second"],
}


def shown_rate(value):
    return f"{round(value):,} tok/s" if value >= 100 else f"{value:.1f} tok/s"


def compare_plans(browser, expected_file, what):
    expected = json.load(open(expected_file, encoding="utf-8"))["plans"]
    page = browser.page
    page.wait_for_selector("#plan-results .plan", state="attached")
    shown = browser.evaluate(
        "[...document.querySelectorAll('#plan-results .plan')].map((p) => ({"
        "...p.dataset, decodeText: p.querySelector('dd[data-fact=decode]').textContent,"
        "prefillText: p.querySelector('dd[data-fact=prefill]').textContent}))"
    )
    check(len(shown) == len(expected), f"{what}: {len(shown)} plans, `uma plan` made {len(expected)}")
    for row, plan in zip(shown, expected):
        check(row["machine"] == plan["machine"]["name"], f"{what}: machine {row['machine']}")
        for field, read in PLAN_FIELDS.items():
            want = read(plan)
            got = row[field]
            same = got == want if isinstance(want, str) else float(got) == float(want)
            check(same, f"{what} on {row['machine']}: {field} {got} != uma plan's {want}")
        speed = plan["speed"]
        check(shown_rate(speed["decode_full_context"]["tokens_per_second"]) in row["decodeText"],
              f"{what}: decode shown as {row['decodeText']!r}")
        check(shown_rate(speed["prefill"]["tokens_per_second"]) in row["prefillText"],
              f"{what}: prefill shown as {row['prefillText']!r}")
    # The bars: stacked parts against the machine's usable memory, the headroom line at 75%.
    marks = browser.evaluate(
        """[...document.querySelectorAll('#plan-results .plan')].map((p) => {
            const bar = p.querySelector('.plan-bar').getBoundingClientRect();
            const usable = p.querySelector('.marker.usable').getBoundingClientRect();
            const scale = Math.max(Number(p.dataset.budgetBytes), Number(p.dataset.neededBytes));
            return [(usable.left - bar.left) / bar.width, Number(p.dataset.usableBytes) / scale];
        })"""
    )
    for at, want in marks:
        check(abs(at - want) < 0.01, f"{what}: the usable line at {at:.3f}, not {want:.3f}")
    return expected


def plan_view(browser, args):
    page = browser.page
    page.click("button.tab[data-view=plan]")
    page.wait_for_selector("#plan-machines input", state="attached")
    machines = args.plan_machines.split(",")
    page.click("#plan-machines-summary")
    page.click("#plan-none")
    for name in machines:
        page.check(f"#plan-machines input[value='{name}']")
    page.fill("#plan-bandwidth", args.plan_bandwidth)

    # A described model, typed as a user would (the fields and values of `uma plan`'s flags).
    page.check("#plan-source-described")
    page.select_option("#plan-preset", "")
    for selector, value in json.loads(args.plan_form).items():
        if selector == "#plan-quant":
            page.select_option(selector, value)
        else:
            page.fill(selector, value)
    page.click("#plan-run")
    expected = compare_plans(browser, args.plan_described, "described model")
    check(any(p["memory"]["verdict"] == "does_not_fit" for p in expected)
          and any(p["memory"]["verdict"] == "fits" for p in expected),
          "the machines chosen show both verdicts")
    page.click("#plan-machines-summary")
    page.evaluate("document.querySelector('#view-plan').scrollTop = 0")
    page.set_viewport_size({"width": 1280, "height": 1060})
    page.screenshot(path=f"{args.screenshots}/plan.png")
    page.set_viewport_size({"width": 1280, "height": 820})

    # A stored model, by name.
    page.check("#plan-source-stored")
    page.select_option("#plan-model", args.stored_model)
    page.fill("#plan-ctx", "")
    page.fill("#plan-seqs", "1")
    page.evaluate("document.querySelector('#plan-results').replaceChildren()")
    page.click("#plan-run")
    compare_plans(browser, args.plan_stored, "stored model")

    # A refusal is shown, not swallowed.
    page.check("#plan-source-described")
    page.fill("#plan-ctx", "999999999")
    page.click("#plan-run")
    page.wait_for_selector("#plan-error:not([hidden])")
    check("context_length" in page.text_content("#plan-error"), page.text_content("#plan-error"))


# ---------------------------------------------------------------------------------------------
# Phone width and dark theme


def small_and_dark(playwright, args, storage_state):
    browser = Browser(playwright, args.browser, args.base_url,
                      viewport={"width": 390, "height": 844}, color_scheme="dark",
                      is_mobile=True, has_touch=True, storage_state=storage_state)
    page = browser.page
    browser.open()
    width = browser.evaluate("document.documentElement.scrollWidth")
    check(width <= 390, f"no sideways scrolling at phone width ({width} px)")
    check(page.is_visible("#prompt") and page.is_visible("#send"), "the composer fits")
    check(not page.is_visible("#sidebar"), "conversations folded away")
    page.screenshot(path=f"{args.screenshots}/phone-dark.png")
    page.click("#toggle-sidebar")
    check(page.is_visible("#sidebar"), "the menu button shows the conversations")
    check(page.is_visible("#conversations .conversation-title"), "stored conversations listed")
    page.click("#conversations .conversation-title")
    check(not page.is_visible("#sidebar"), "picking a conversation folds the list away")
    check(len(messages(browser)) > 0, "the conversation shows on the phone")
    background = browser.evaluate("getComputedStyle(document.body).backgroundColor")
    channels = [int(c) for c in re.findall(r"\d+", background)[:3]]
    check(sum(channels) < 200, f"dark theme: background {background}")
    page.click("button.tab[data-view=plan]")
    width = browser.evaluate("document.documentElement.scrollWidth")
    check(width <= 390, f"the plan view fits the phone ({width} px)")
    browser.finish()


# ---------------------------------------------------------------------------------------------
# The API key


def api_key(playwright, args):
    browser = Browser(playwright, args.browser, args.base_url)
    page = browser.page
    page.goto(args.base_url + "/")
    page.wait_for_selector("#key-dialog[open]")
    check(browser.dialog_open(), "the page asks for the key")
    page.fill("#key-input", "wrong-key")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#key-refused:not([hidden])")
    check(browser.dialog_open(), "a refused key asks again")
    page.fill("#key-input", args.api_key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("body[data-ready=true]", state="attached")
    check(not browser.dialog_open(), "the right key closes the prompt")
    keyed_from = len(browser.statuses)
    values = browser.evaluate("[...document.querySelectorAll('#model option')].map((o) => o.value)")
    check(args.model in values, f"models listed with the key: {values}")
    # Asked once: a reload uses the stored key.
    page.reload()
    page.wait_for_selector("body[data-ready=true]", state="attached")
    check(not browser.dialog_open(), "no prompt after a reload")
    page.click("button.tab[data-view=plan]")
    page.wait_for_selector("#plan-machines input", state="attached")
    check(not browser.dialog_open(), "the plan view's calls carry the key")
    # The page itself came without a key; every API call after the key was given carried it.
    first = browser.requests[0]
    check(urlsplit(first[1]).path == "/" and "authorization" not in first[2], f"page request {first}")
    keyed = [r for r in browser.requests if urlsplit(r[1]).path.startswith("/v1/")]
    check(keyed, "API calls were made")
    with_key = [r for r in keyed if r[2].get("authorization") == f"Bearer {args.api_key}"]
    check(len(with_key) >= 3, f"API calls with the key: {len(with_key)} of {len(keyed)}")
    refused = [url for status, url in browser.statuses[:keyed_from] if status == 401]
    check(len(refused) >= 2, f"401s for no key and the wrong key: {refused}")
    refused = [url for status, url in browser.statuses[keyed_from:] if status == 401]
    check(refused == [], f"no 401 once the key was given: {refused}")
    # Chromium logs each 401 as a failed resource load.
    browser.finish(allowed_errors=("401",))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--browser", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--api-key")
    parser.add_argument("--plan-described")
    parser.add_argument("--plan-form", help="JSON: form field selector -> value")
    parser.add_argument("--plan-stored")
    parser.add_argument("--stored-model", default="tiny:q8")
    parser.add_argument("--plan-machines", default="this,mac-mini-m4-16gb,h100-sxm-80gb")
    parser.add_argument("--plan-bandwidth", default="20")
    parser.add_argument("--screenshots")
    args = parser.parse_args()

    with sync_playwright() as playwright:
        if args.api_key:
            api_key(playwright, args)
        else:
            browser = Browser(playwright, args.browser, args.base_url, color_scheme="light")
            browser.open()
            shown = chat(browser, args)
            conversations(browser, shown, args.screenshots)
            hostile_markdown(browser)
            server_view(browser, args)
            plan_view(browser, args)
            check(not browser.dialog_open(), "no key prompt at any point")
            refused = [url for status, url in browser.statuses if status == 401]
            check(refused == [], f"no 401 without --api-key: {refused}")
            failed = [(status, urlsplit(url).path) for status, url in browser.statuses
                      if status >= 400]
            check(failed == [(400, "/v1/plan")], f"only the plan meant to be refused failed: {failed}")
            state = browser.context.storage_state()
            # Chromium logs that refusal as a failed resource load.
            browser.finish(allowed_errors=("status of 400",))
            small_and_dark(playwright, args, state)
    print(f"web_client.py: all {CHECKS} checks passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as error:
        print(f"web_client.py: FAILED after {CHECKS} checks: {error}", file=sys.stderr)
        sys.exit(1)
