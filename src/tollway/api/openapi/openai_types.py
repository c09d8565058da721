"""The OpenAI-protocol surfaces' bodies, for the document only (no request is decoded with these).

Each request type names the main fields and the bounds the surface's own validating Struct
enforces (`surfaces/*.py`; a test holds the two together); any other field is passed to the
upstream untouched.  Answers are the upstream's, with `usage` complete and `usage.cost` added.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from tollway.surfaces.completions import MAX_BEST_OF, MAX_N
from tollway.usage import MAX_TOKENS

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "Completion",
    "CompletionChunk",
    "CompletionRequest",
    "EmbeddingList",
    "EmbeddingRequest",
    "ResponseObject",
    "ResponseStreamEvent",
    "ResponsesRequest",
]

Model = Annotated[str, Meta(min_length=1, description="A served model (GET /v1/models).")]
Tokens = Annotated[int, Meta(ge=1, le=MAX_TOKENS)]
Cost = Annotated[float, Meta(description="What the request cost, USD (a JSON number).")]
Stream = Annotated[bool | None, Meta(description="Answer with server-sent events (text/event-stream).")]
_TOKEN_IDS = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}
Prompt = Annotated[  # msgspec types hold one kind of array at most: the schema says the four
    Any,
    Meta(
        description="A string, strings, token ids, or arrays of token ids; none empty.",
        extra_json_schema={
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
                _TOKEN_IDS,
                {"type": "array", "items": _TOKEN_IDS, "minItems": 1},
            ]
        },
    ),
]


class StreamOptions(Struct):
    include_usage: Annotated[
        bool | None, Meta(description="Ignored: every stream ends with a usage chunk.")
    ] = None


class ChatMessage(Struct):
    role: Annotated[str, Meta(examples=["system", "developer", "user", "assistant", "tool"])]
    content: Annotated[
        str | list[dict[str, Any]] | None,
        Meta(description="Text, or content parts (`text`, `image_url`, `input_audio`, `file`)."),
    ] = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class FunctionDefinition(Struct):
    name: str
    description: str | None = None
    parameters: Annotated[dict[str, Any] | None, Meta(description="A JSON Schema object.")] = None
    strict: bool | None = None


class ChatTool(Struct):
    type: Annotated[str, Meta(examples=["function"])]
    function: FunctionDefinition | None = None


class ChatCompletionRequest(Struct):
    """OpenAI's chat completions request."""

    model: Model
    messages: Annotated[list[ChatMessage], Meta(min_length=1)]
    stream: Stream = None
    stream_options: StreamOptions | None = None
    max_tokens: Annotated[Tokens | None, Meta(description="Bounds the output, and the reservation.")] = None
    max_completion_tokens: Annotated[
        Tokens | None, Meta(description="Bounds the output, and the reservation.")
    ] = None
    n: Annotated[int, Meta(ge=1, le=128)] | None = None
    tools: list[ChatTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: Annotated[
        dict[str, Any] | None, Meta(description='`{"type": "json_object"}`, `json_schema`, …')
    ] = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    reasoning_effort: str | None = None
    user: str | None = None


class PromptDetails(Struct):
    cached_tokens: int
    cache_write_tokens: int
    cache_creation_tokens: Annotated[int, Meta(description="The same as `cache_write_tokens`.")]
    cache_write_1h_tokens: int


class CompletionDetails(Struct):
    reasoning_tokens: int


class ChatUsage(Struct):
    """Always complete: the upstream's numbers, or counted with tiktoken when it reported none."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptDetails
    completion_tokens_details: CompletionDetails
    cost: Cost


class ChatChoice(Struct):
    index: int
    message: dict[str, Any]
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class ChatCompletion(Struct):
    """The upstream's answer; `model` is the served name asked for when it is an alias."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: ChatUsage
    system_fingerprint: str | None = None


class ChunkChoice(Struct):
    index: int
    delta: dict[str, Any]
    finish_reason: str | None


class ChatCompletionChunk(Struct):
    """One `data:` payload; the last one before `[DONE]` has `"choices": []` and the usage."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: ChatUsage | None = None


class ResponsesRequest(Struct):
    """OpenAI's Responses API request."""

    model: Model
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    stream: Stream = None
    max_output_tokens: Annotated[
        Tokens | None, Meta(description="Bounds the output, and the reservation.")
    ] = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    previous_response_id: str | None = None
    reasoning: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None


class InputDetails(Struct):
    cached_tokens: int
    cache_write_tokens: int


class ResponsesUsage(Struct):
    input_tokens: int
    input_tokens_details: InputDetails
    output_tokens: int
    output_tokens_details: CompletionDetails
    total_tokens: int
    cost: Cost


class ResponseObject(Struct):
    id: str
    object: Literal["response"]
    created_at: int
    status: Annotated[str, Meta(examples=["completed", "incomplete", "failed"])]
    model: str
    output: list[dict[str, Any]]
    usage: ResponsesUsage
    error: dict[str, Any] | None = None


class ResponseStreamEvent(Struct):
    """One event, relayed with its `event:` name; the terminal one carries `response.usage` with `cost`."""

    type: Annotated[str, Meta(examples=["response.output_text.delta", "response.completed"])]
    sequence_number: int | None = None
    response: ResponseObject | None = None
    delta: str | None = None


class EmbeddingRequest(Struct):
    """OpenAI's embeddings request; billed for input tokens only."""

    model: Model
    input: Prompt
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Tokens | None = None
    user: str | None = None


class Embedding(Struct):
    object: Literal["embedding"]
    index: int
    embedding: Annotated[list[float] | str, Meta(description="Floats, or base64 when asked.")]


class EmbeddingUsage(Struct):
    prompt_tokens: int
    total_tokens: int
    cost: Cost


class EmbeddingList(Struct):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class CompletionRequest(Struct):
    """OpenAI's legacy completions request."""

    model: Model
    prompt: Prompt
    max_tokens: Annotated[Tokens | None, Meta(description="Bounds the output, and the reservation.")] = None
    n: Annotated[int, Meta(ge=1, le=MAX_N)] | None = None
    best_of: Annotated[int, Meta(ge=1, le=MAX_BEST_OF)] | None = None
    stream: Stream = None
    stream_options: StreamOptions | None = None
    echo: bool | None = None
    suffix: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    logprobs: int | None = None
    seed: int | None = None
    user: str | None = None


class CompletionChoice(Struct):
    text: str
    index: int
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class Completion(Struct):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: ChatUsage


class CompletionChunk(Struct):
    """One `data:` payload; the last one before `[DONE]` has `"choices": []` and the usage."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: ChatUsage | None = None
