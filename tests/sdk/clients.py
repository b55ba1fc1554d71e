"""The official OpenAI and Anthropic Python SDKs, unmodified, driving a running ARES server.

    target/sdk-venv/bin/python tests/sdk/clients.py <scenario>

tests/it/sdk_clients.rs starts the server (with a scripted mock provider behind it), provisions
the tenant and key, scripts the mock, and runs one scenario with its expectations in the
environment:

    ARES_BASE_URL           http://127.0.0.1:PORT (the OpenAI client gets ARES_BASE_URL/v1)
    ARES_API_KEY            a tenant API key, ares_...
    ARES_MODEL              the model to call (default mock-model)
    ARES_REPLY              the text the mock answers with
    ARES_PROMPT_TOKENS, ARES_COMPLETION_TOKENS   the usage the mock reports
    ...                     scenario-specific ones, named in each scenario's docstring

Every scenario calls the SDKs as a user would and asserts content, not only the absence of an
exception. Exit status: 0 passed, 1 an assertion failed, 2 anything else (the SDK raised
something unexpected, a variable is missing). The reason goes to stderr.
"""

import json
import os
import sys
import traceback

import anthropic
import openai
from anthropic.types import Message
from openai.types.chat import ChatCompletion

SCENARIOS = {}

# Every client fails fast: the SDKs' default retries (on 429, 5xx, connection errors) would
# only slow a failing test down, and the quota scenario needs the first 429 as it is.
TIMEOUT_SECS = 30.0

WEATHER_TOOL_DESCRIPTION = "The current weather in a city"
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "The city's name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city"],
}
WEATHER_RESULT = json.dumps({"temperature": 18, "unit": "celsius", "sky": "clear"})
WEATHER_QUESTION = "What's the weather in Paris?"


class Failed(Exception):
    """An assertion about the server's behaviour did not hold."""


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


def check(condition, message):
    if not condition:
        raise Failed(message)


def eq(actual, expected, what):
    if actual != expected:
        raise Failed(f"{what}: expected {expected!r}, got {actual!r}")


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None:
        raise RuntimeError(f"the scenario needs ${name}")
    return value


def env_int(name):
    return int(env(name))


def env_json(name):
    return json.loads(env(name))


def model():
    return env("ARES_MODEL", "mock-model")


def openai_client(key=None):
    return openai.OpenAI(
        base_url=f"{env('ARES_BASE_URL')}/v1",
        api_key=key or env("ARES_API_KEY"),
        max_retries=0,
        timeout=TIMEOUT_SECS,
    )


def anthropic_client(key=None):
    return anthropic.Anthropic(
        base_url=env("ARES_BASE_URL"),
        api_key=key or env("ARES_API_KEY"),
        max_retries=0,
        timeout=TIMEOUT_SECS,
    )


def raises(exception, call, what):
    """Run `call`, which must raise `exception` (an SDK error class); return the exception."""
    try:
        result = call()
    except exception as e:
        return e
    except Exception as e:  # noqa: BLE001 - any other class is the failure being reported
        raise Failed(f"{what}: expected {exception.__module__}.{exception.__name__}, got {e.__class__.__name__}: {e}")
    raise Failed(f"{what}: expected {exception.__module__}.{exception.__name__}, got a result: {result!r}")


def openai_usage(usage, what):
    check(usage is not None, f"{what}: no usage")
    eq(usage.prompt_tokens, env_int("ARES_PROMPT_TOKENS"), f"{what}: usage.prompt_tokens")
    eq(usage.completion_tokens, env_int("ARES_COMPLETION_TOKENS"), f"{what}: usage.completion_tokens")
    eq(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens, f"{what}: usage.total_tokens")


def anthropic_usage(usage, what):
    check(usage is not None, f"{what}: no usage")
    eq(usage.input_tokens, env_int("ARES_PROMPT_TOKENS"), f"{what}: usage.input_tokens")
    eq(usage.output_tokens, env_int("ARES_COMPLETION_TOKENS"), f"{what}: usage.output_tokens")


# ------------------------------------------------------------------------------------ OpenAI


@scenario
def openai_models():
    """ARES_TIERS: tier names to find; ARES_AGENTS: agents the key may run; ARES_ABSENT: model
    names that must not be listed (all comma-separated)."""
    client = openai_client()
    listed = list(client.models.list())
    ids = [m.id for m in listed]
    agents = [f"agent:{name}" for name in env("ARES_AGENTS").split(",")]
    expected = [model(), *env("ARES_TIERS").split(","), *agents]
    for name in expected:
        check(name in ids, f"models.list() lacks {name!r}: {ids}")
    for name in env("ARES_ABSENT", "").split(","):
        check(not name or name not in ids, f"models.list() has {name!r}: {ids}")
    eq(len(set(ids)), len(ids), f"models.list() ids are unique: {ids}")
    for entry in listed:
        eq(entry.object, "model", f"{entry.id}: object")
        check(isinstance(entry.created, int) and entry.created > 0, f"{entry.id}: created {entry.created!r}")
        check(isinstance(entry.owned_by, str) and entry.owned_by, f"{entry.id}: owned_by {entry.owned_by!r}")

    for name in expected:
        found = client.models.retrieve(name)
        eq(found.id, name, f"models.retrieve({name!r}).id")
        eq(found.object, "model", f"models.retrieve({name!r}).object")

    missing = "no-such-model"
    e = raises(openai.NotFoundError, lambda: client.models.retrieve(missing), "models.retrieve(unknown)")
    eq(e.status_code, 404, "unknown model: status")


@scenario
def openai_chat():
    """Sends temperature 0.5, top_p 0.75, max_tokens 50, stop ["END"], seed 7, user: the Rust
    side checks what reached the provider. Twice: plain, then through with_raw_response to read
    the rate-limit headers."""
    client = openai_client()
    request = dict(
        model=model(),
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello."},
        ],
        temperature=0.5,
        top_p=0.75,
        max_tokens=50,
        stop=["END"],
        seed=7,
        user="sdk-user",
        n=1,
    )
    check_completion(client.chat.completions.create(**request))

    raw = client.chat.completions.with_raw_response.create(**request)
    for header in ("x-ratelimit-limit", "x-ratelimit-remaining"):
        check(raw.headers.get(header, "").isdigit(), f"the {header} header: {raw.headers.get(header)!r}")
    check_completion(raw.parse())


def check_completion(completion):
    eq(completion.object, "chat.completion", "object")
    check(completion.id, f"an id: {completion.id!r}")
    check(isinstance(completion.model, str) and completion.model, f"a model: {completion.model!r}")
    eq(len(completion.choices), 1, "number of choices")
    choice = completion.choices[0]
    eq(choice.index, 0, "choices[0].index")
    eq(choice.message.role, "assistant", "message.role")
    eq(choice.message.content, env("ARES_REPLY"), "message.content")
    check(not choice.message.tool_calls, f"no tool calls: {choice.message.tool_calls!r}")
    eq(choice.finish_reason, "stop", "finish_reason")
    openai_usage(completion.usage, "chat completion")


def collect_stream(stream, what):
    """Chunks of a streamed chat completion: (text, finish_reasons, chunks)."""
    chunks = list(stream)
    check(chunks, f"{what}: no chunks")
    ids = {c.id for c in chunks}
    eq(len(ids), 1, f"{what}: one id for every chunk")
    for c in chunks:
        eq(c.object, "chat.completion.chunk", f"{what}: chunk object")
    return chunks


@scenario
def openai_stream_usage():
    client = openai_client()
    messages = [{"role": "user", "content": "Stream a greeting."}]
    reply = env("ARES_REPLY")

    stream = client.chat.completions.create(
        model=model(), messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = collect_stream(stream, "include_usage")
    check(len(chunks) >= 2, f"include_usage: at least a content chunk and the usage chunk: {chunks}")
    last = chunks[-1]
    eq(last.choices, [], "include_usage: the last chunk's choices")
    openai_usage(last.usage, "include_usage: the last chunk")
    body = chunks[:-1]
    for c in body:
        check(c.usage is None, f"include_usage: usage only in the last chunk, found it in {c}")
        eq(len(c.choices), 1, f"include_usage: one choice per chunk: {c}")
    eq(body[0].choices[0].delta.role, "assistant", "the first delta's role")
    text = "".join(c.choices[0].delta.content or "" for c in body)
    eq(text, reply, "include_usage: the concatenated deltas")
    finishes = [c.choices[0].finish_reason for c in body if c.choices[0].finish_reason is not None]
    eq(finishes, ["stop"], "include_usage: finish reasons")
    eq(body[-1].choices[0].finish_reason, "stop", "include_usage: the finish reason comes last")

    # Without stream_options: no usage chunk at all.
    stream = client.chat.completions.create(model=model(), messages=messages, stream=True)
    chunks = collect_stream(stream, "no include_usage")
    for c in chunks:
        check(c.usage is None, f"no include_usage: no usage, found it in {c}")
        eq(len(c.choices), 1, f"no include_usage: one choice per chunk: {c}")
    eq("".join(c.choices[0].delta.content or "" for c in chunks), reply, "no include_usage: the deltas")
    eq(chunks[-1].choices[0].finish_reason, "stop", "no include_usage: the last finish reason")


def weather_tools_openai():
    return [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": WEATHER_TOOL_DESCRIPTION,
                "parameters": WEATHER_SCHEMA,
            },
        }
    ]


@scenario
def openai_client_tools():
    """ARES_TOOL_ARGS: the arguments (JSON) the mock calls get_weather with. The mock answers
    tool call, text, tool call, text (the second pair streamed)."""
    client = openai_client()
    arguments = env_json("ARES_TOOL_ARGS")
    reply = env("ARES_REPLY")
    tools = weather_tools_openai()

    # Non-streaming: the call comes back to the client, the client runs it and answers.
    messages = [{"role": "user", "content": WEATHER_QUESTION}]
    first = client.chat.completions.create(model=model(), messages=messages, tools=tools, tool_choice="auto")
    choice = first.choices[0]
    eq(choice.finish_reason, "tool_calls", "finish_reason of the tool call")
    calls = choice.message.tool_calls or []
    eq(len(calls), 1, f"number of tool calls: {calls}")
    call = calls[0]
    eq(call.type, "function", "tool call type")
    eq(call.function.name, "get_weather", "tool call name")
    eq(json.loads(call.function.arguments), arguments, "tool call arguments")
    check(isinstance(call.id, str) and call.id, f"tool call id: {call.id!r}")
    messages.append(choice.message)  # the SDK's own message object, as the OpenAI guide does
    messages.append({"role": "tool", "tool_call_id": call.id, "content": WEATHER_RESULT})
    second = client.chat.completions.create(model=model(), messages=messages, tools=tools)
    eq(second.choices[0].message.content, reply, "the answer after the tool result")
    eq(second.choices[0].finish_reason, "stop", "finish_reason after the tool result")
    check(not second.choices[0].message.tool_calls, "no tool call after the result")

    # Streaming: the call's id and name, then its arguments in deltas.
    messages = [{"role": "user", "content": WEATHER_QUESTION}]
    stream = client.chat.completions.create(model=model(), messages=messages, tools=tools, stream=True)
    assembled = {}
    finish = None
    pieces = 0
    for chunk in stream:
        for choice in chunk.choices:
            if choice.finish_reason is not None:
                finish = choice.finish_reason
            for delta in choice.delta.tool_calls or []:
                entry = assembled.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
                if delta.id:
                    entry["id"] = delta.id
                if delta.function and delta.function.name:
                    entry["name"] = delta.function.name
                if delta.function and delta.function.arguments:
                    entry["arguments"] += delta.function.arguments
                    pieces += 1
    eq(finish, "tool_calls", "streamed finish_reason")
    eq(list(assembled), [0], f"streamed tool call indexes: {assembled}")
    streamed = assembled[0]
    eq(streamed["name"], "get_weather", "streamed tool call name")
    check(streamed["id"], f"streamed tool call id: {streamed}")
    eq(json.loads(streamed["arguments"]), arguments, f"streamed arguments ({pieces} deltas)")
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": streamed["id"],
                    "type": "function",
                    "function": {"name": streamed["name"], "arguments": streamed["arguments"]},
                }
            ],
        }
    )
    messages.append({"role": "tool", "tool_call_id": streamed["id"], "content": WEATHER_RESULT})
    stream = client.chat.completions.create(model=model(), messages=messages, tools=tools, stream=True)
    text = ""
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            check(not choice.delta.tool_calls, f"no streamed tool call after the result: {chunk}")
            finish = choice.finish_reason or finish
    eq(text, reply, "the streamed answer after the tool result")
    eq(finish, "stop", "streamed finish_reason after the tool result")


@scenario
def openai_agent_model():
    """ARES_AGENT: an agent with the calculator tool; the mock calls it, then answers (twice:
    plain, then streamed)."""
    client = openai_client()
    name = f"agent:{env('ARES_AGENT')}"
    reply = env("ARES_REPLY")
    messages = [{"role": "user", "content": "What is 2+3*4?"}]

    completion = client.chat.completions.create(model=name, messages=messages)
    eq(len(completion.choices), 1, "number of choices")
    message = completion.choices[0].message
    eq(message.role, "assistant", "role")
    eq(message.content, reply, "the agent's final answer")
    check(not message.tool_calls, f"server-side tool calls stay on the server: {message.tool_calls}")
    eq(completion.choices[0].finish_reason, "stop", "finish_reason")
    check(completion.usage is not None and completion.usage.total_tokens > 0, f"usage: {completion.usage}")

    stream = client.chat.completions.create(model=name, messages=messages, stream=True)
    text = ""
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            check(not choice.delta.tool_calls, f"no streamed tool call from an agent: {chunk}")
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    eq(text, reply, "the agent's streamed answer")
    eq(finish, "stop", "streamed finish_reason")


@scenario
def openai_embeddings():
    """ARES_EXPECTED_EMBEDDINGS: {"input": [texts], "vectors": [[floats]]}, the hash
    embedder's vectors for those texts."""
    client = openai_client()
    expected = env_json("ARES_EXPECTED_EMBEDDINGS")
    texts, vectors = expected["input"], expected["vectors"]

    def check_response(response, what, want):
        eq(response.object, "list", f"{what}: object")
        eq(len(response.data), len(want), f"{what}: number of embeddings")
        for i, (item, vector) in enumerate(zip(response.data, want)):
            eq(item.object, "embedding", f"{what}: data[{i}].object")
            eq(item.index, i, f"{what}: data[{i}].index")
            got = list(item.embedding)
            eq(len(got), len(vector), f"{what}: data[{i}] dimension")
            worst = max(abs(a - b) for a, b in zip(got, vector))
            check(worst <= 1e-6, f"{what}: data[{i}] differs from the hash embedder's vector by {worst}")
        check(response.usage is not None and response.usage.prompt_tokens > 0, f"{what}: usage {response.usage}")

    # The SDK's default: it asks for base64 and decodes it with numpy.
    default = client.embeddings.create(model="hash", input=texts)
    check_response(default, "default (base64)", vectors)
    as_floats = client.embeddings.create(model="hash", input=texts, encoding_format="float")
    check_response(as_floats, "encoding_format=float", vectors)
    single = client.embeddings.create(model="hash", input=texts[0])
    check_response(single, "one string", vectors[:1])


@scenario
def openai_errors():
    """ARES_MODEL must exist; a made-up key and model must not."""
    reply_model = model()
    bad = openai_client(key="ares_" + "0" * 40)
    e = raises(
        openai.AuthenticationError,
        lambda: bad.chat.completions.create(model=reply_model, messages=[{"role": "user", "content": "hi"}]),
        "a bad key",
    )
    eq(e.status_code, 401, "bad key: status")
    eq(e.code, "invalid_api_key", f"bad key: error.code in {e.body}")
    e = raises(openai.AuthenticationError, lambda: list(bad.models.list()), "a bad key listing models")
    eq(e.code, "invalid_api_key", f"bad key (models): error.code in {e.body}")

    client = openai_client()
    missing = "no-such-model"
    e = raises(
        openai.NotFoundError,
        lambda: client.chat.completions.create(model=missing, messages=[{"role": "user", "content": "hi"}]),
        "an unknown model",
    )
    eq(e.status_code, 404, "unknown model: status")
    eq(e.code, "model_not_found", f"unknown model: error.code in {e.body}")
    check(missing in e.message, f"unknown model: the message names it: {e.message!r}")

    # No `messages`: the SDK's typed method insists on them, so use its generic POST.
    e = raises(
        openai.BadRequestError,
        lambda: client.post(
            "/chat/completions", body={"model": reply_model}, cast_to=ChatCompletion
        ),
        "a request without messages",
    )
    eq(e.status_code, 400, "no messages: status")
    eq(e.type, "invalid_request_error", f"no messages: error.type in {e.body}")
    check("messages" in f"{e.param} {e.message}", f"no messages: the error names the field: {e.body}")


@scenario
def openai_quota():
    """ARES_API_KEY's tenant has no quota left."""
    client = openai_client()
    e = raises(
        openai.RateLimitError,
        lambda: client.chat.completions.create(model=model(), messages=[{"role": "user", "content": "hi"}]),
        "a call over quota",
    )
    eq(e.status_code, 429, "over quota: status")
    retry_after = e.response.headers.get("retry-after")
    check(retry_after is not None and retry_after.isdigit() and int(retry_after) > 0, f"Retry-After: {retry_after!r}")
    check(isinstance(e.body, dict) and e.body.get("message"), f"an OpenAI-shaped error body: {e.body}")


@scenario
def openai_isolation():
    """ARES_AGENT: the key's own tenant agent; ARES_OTHER_AGENT: another tenant's agent."""
    client = openai_client()
    own, other = f"agent:{env('ARES_AGENT')}", f"agent:{env('ARES_OTHER_AGENT')}"
    ids = [m.id for m in client.models.list()]
    check(own in ids, f"the key lists its own tenant's agent {own}: {ids}")
    check(other not in ids, f"the key lists another tenant's agent {other}: {ids}")
    eq(client.models.retrieve(own).id, own, "retrieving the own agent")
    raises(openai.NotFoundError, lambda: client.models.retrieve(other), "retrieving another tenant's agent")
    e = raises(
        openai.NotFoundError,
        lambda: client.chat.completions.create(model=other, messages=[{"role": "user", "content": "hi"}]),
        "chatting with another tenant's agent",
    )
    eq(e.code, "model_not_found", f"another tenant's agent: error.code in {e.body}")


# --------------------------------------------------------------------------------- Anthropic


@scenario
def anthropic_messages():
    """Sends max_tokens 100 and stop_sequences ["END"] (this SDK has no temperature or top_p):
    the Rust side checks what reached the provider. Twice: system as a string, then as blocks
    through with_raw_response to read the rate-limit headers."""
    client = anthropic_client()
    reply = env("ARES_REPLY")
    request = dict(
        model=model(),
        max_tokens=100,
        stop_sequences=["END"],
        messages=[{"role": "user", "content": "Say hello."}],
    )
    plain = client.messages.create(system="Be brief.", **request)
    raw = client.messages.with_raw_response.create(system=[{"type": "text", "text": "Be brief."}], **request)
    for header in ("x-ratelimit-limit", "x-ratelimit-remaining"):
        check(raw.headers.get(header, "").isdigit(), f"the {header} header: {raw.headers.get(header)!r}")
    for what, message in (("system as a string", plain), ("system as blocks", raw.parse())):
        eq(message.type, "message", f"{what}: type")
        eq(message.role, "assistant", f"{what}: role")
        check(message.id, f"{what}: an id")
        check(isinstance(message.model, str) and message.model, f"{what}: a model {message.model!r}")
        eq([b.type for b in message.content], ["text"], f"{what}: content block types")
        eq(message.content[0].text, reply, f"{what}: text")
        eq(message.stop_reason, "end_turn", f"{what}: stop_reason")
        anthropic_usage(message.usage, what)


@scenario
def anthropic_stream():
    client = anthropic_client()
    reply = env("ARES_REPLY")
    messages = [{"role": "user", "content": "Stream a greeting."}]

    with client.messages.stream(model=model(), max_tokens=100, messages=messages) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    eq(text, reply, "text_stream")
    eq([b.type for b in final.content], ["text"], "final message content")
    eq(final.content[0].text, reply, "final message text")
    eq(final.stop_reason, "end_turn", "final stop_reason")
    anthropic_usage(final.usage, "final message")

    # The raw events, in the documented order.
    events = list(client.messages.create(model=model(), max_tokens=100, messages=messages, stream=True))
    kinds = [e.type for e in events if e.type != "ping"]
    check(kinds, "no events")
    eq(kinds[0], "message_start", f"the first event: {kinds}")
    eq(kinds[-2:], ["message_delta", "message_stop"], f"the last events: {kinds}")
    blocks = kinds[1:-2]
    check(blocks, f"content blocks: {kinds}")
    i = 0
    while i < len(blocks):
        eq(blocks[i], "content_block_start", f"a block opens: {kinds}")
        j = i + 1
        while j < len(blocks) and blocks[j] == "content_block_delta":
            j += 1
        check(j > i + 1, f"a block has deltas: {kinds}")
        check(j < len(blocks) and blocks[j] == "content_block_stop", f"a block closes: {kinds}")
        i = j + 1
    start = events[[e.type for e in events].index("message_start")]
    eq(start.message.role, "assistant", "message_start: role")
    deltas = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    eq(deltas, reply, "raw text deltas")
    delta = next(e for e in events if e.type == "message_delta")
    eq(delta.delta.stop_reason, "end_turn", "message_delta: stop_reason")
    eq(delta.usage.output_tokens, env_int("ARES_COMPLETION_TOKENS"), "message_delta: usage.output_tokens")


def weather_tools_anthropic():
    return [{"name": "get_weather", "description": WEATHER_TOOL_DESCRIPTION, "input_schema": WEATHER_SCHEMA}]


@scenario
def anthropic_tools():
    """ARES_TOOL_ARGS: the input (JSON) the mock calls get_weather with. The mock answers tool
    call, text, tool call, text (the second pair streamed)."""
    client = anthropic_client()
    arguments = env_json("ARES_TOOL_ARGS")
    reply = env("ARES_REPLY")
    tools = weather_tools_anthropic()

    messages = [{"role": "user", "content": WEATHER_QUESTION}]
    first = client.messages.create(model=model(), max_tokens=200, tools=tools, messages=messages)
    eq(first.stop_reason, "tool_use", "stop_reason of the tool call")
    uses = [b for b in first.content if b.type == "tool_use"]
    eq(len(uses), 1, f"tool_use blocks: {first.content}")
    use = uses[0]
    eq(use.name, "get_weather", "tool_use name")
    eq(use.input, arguments, "tool_use input")
    check(isinstance(use.id, str) and use.id, f"tool_use id: {use.id!r}")
    messages.append({"role": "assistant", "content": first.content})  # the SDK's blocks, as-is
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": WEATHER_RESULT}]}
    )
    second = client.messages.create(model=model(), max_tokens=200, tools=tools, messages=messages)
    eq(second.stop_reason, "end_turn", "stop_reason after the tool result")
    eq([b.type for b in second.content], ["text"], "content after the tool result")
    eq(second.content[0].text, reply, "the answer after the tool result")

    # Streaming: the input arrives as input_json deltas, which the SDK assembles.
    messages = [{"role": "user", "content": WEATHER_QUESTION}]
    with client.messages.stream(model=model(), max_tokens=200, tools=tools, messages=messages) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_message()
    eq(final.stop_reason, "tool_use", "streamed stop_reason")
    uses = [b for b in final.content if b.type == "tool_use"]
    eq(len(uses), 1, f"streamed tool_use blocks: {final.content}")
    eq(uses[0].name, "get_weather", "streamed tool_use name")
    eq(uses[0].input, arguments, "streamed tool_use input")
    check("input_json" in kinds, f"the input streamed as input_json deltas: {kinds}")
    messages.append({"role": "assistant", "content": final.content})
    messages.append(
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": WEATHER_RESULT}]}
    )
    with client.messages.stream(model=model(), max_tokens=200, tools=tools, messages=messages) as stream:
        text = stream.get_final_text()
        final = stream.get_final_message()
    eq(text, reply, "the streamed answer after the tool result")
    eq(final.stop_reason, "end_turn", "streamed stop_reason after the tool result")


@scenario
def anthropic_count_tokens():
    client = anthropic_client()
    short = client.messages.count_tokens(model=model(), messages=[{"role": "user", "content": "Hello."}])
    check(isinstance(short.input_tokens, int) and short.input_tokens > 0, f"input_tokens: {short.input_tokens!r}")
    long_text = "Count every one of these words, please. " * 20
    longer = client.messages.count_tokens(
        model=model(), system="Be brief.", messages=[{"role": "user", "content": long_text}]
    )
    check(
        longer.input_tokens > short.input_tokens,
        f"a longer prompt counts more: {longer.input_tokens} vs {short.input_tokens}",
    )


@scenario
def anthropic_errors():
    bad = anthropic_client(key="ares_" + "0" * 40)
    messages = [{"role": "user", "content": "hi"}]
    e = raises(
        anthropic.AuthenticationError,
        lambda: bad.messages.create(model=model(), max_tokens=10, messages=messages),
        "a bad key",
    )
    eq(e.status_code, 401, "bad key: status")
    eq(e.body.get("type") if isinstance(e.body, dict) else e.body, "error", "bad key: body type")
    eq(e.body["error"]["type"], "authentication_error", f"bad key: error.type in {e.body}")

    client = anthropic_client()
    e = raises(
        anthropic.NotFoundError,
        lambda: client.messages.create(model="no-such-model", max_tokens=10, messages=messages),
        "an unknown model",
    )
    eq(e.status_code, 404, "unknown model: status")
    eq(e.body["error"]["type"], "not_found_error", f"unknown model: error.type in {e.body}")
    check("no-such-model" in e.body["error"]["message"], f"unknown model: the message names it: {e.body}")

    # No `messages`: the typed method insists on them, so use the SDK's generic POST.
    e = raises(
        anthropic.BadRequestError,
        lambda: client.post(
            "/v1/messages", body={"model": model(), "max_tokens": 10}, cast_to=Message
        ),
        "a request without messages",
    )
    eq(e.body["error"]["type"], "invalid_request_error", f"no messages: error.type in {e.body}")


def main(argv):
    if len(argv) != 2 or argv[1] not in SCENARIOS:
        print(f"usage: {argv[0]} <scenario>; scenarios: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    name = argv[1]
    try:
        SCENARIOS[name]()
    except Failed as e:
        print(f"FAILED {name}: {e}", file=sys.stderr)
        return 1
    except Exception:  # noqa: BLE001 - reported with its traceback
        print(f"ERROR {name}: unexpected exception", file=sys.stderr)
        traceback.print_exc()
        return 2
    print(f"ok {name} (openai {openai.__version__}, anthropic {anthropic.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
