"""langchain-openai's ChatOpenAI against tollway: invoke and stream, with use_responses_api=True
(the Responses API) and False (chat completions, the control).  env: SMOKE_BASE, SMOKE_KEY, SMOKE_RESULTS
"""

import json
import os

import openai
from langchain_openai import ChatOpenAI

PROMPT = "Say hello in five words."


def find_cost(value):
    """The first "cost" anywhere in the metadata (tollway puts it in the usage object)."""
    if isinstance(value, dict):
        if "cost" in value:
            return value["cost"]
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            if (found := find_cost(item)) is not None:
                return found
    return None


def run(name, responses, streaming):
    # Each case has its own base URL, so the logging proxy knows which case sent what.
    llm = ChatOpenAI(
        model="demo",
        base_url=f"{os.environ['SMOKE_BASE']}/{name}/v1",
        api_key=os.environ["SMOKE_KEY"],
        use_responses_api=responses,
        include_response_headers=True,
        max_retries=0,
    )
    if not streaming:
        return llm.invoke(PROMPT)
    message = None
    for chunk in llm.stream(PROMPT):
        message = chunk if message is None else message + chunk
    return message


for label, responses, streaming in [
    ("langchain responses invoke", True, False),
    ("langchain responses stream", True, True),
    ("langchain chat invoke", False, False),
    ("langchain chat stream", False, True),
]:
    name = label.replace(" ", "-")
    row = {"case": name, "control": not responses}
    try:
        message = run(name, responses, streaming)
        usage = message.usage_metadata or {}
        metadata = dict(message.response_metadata)
        headers = metadata.pop("headers", {})
        row |= {
            "ok": bool(message.text)
            and usage.get("input_tokens", 0) > 0
            and usage.get("output_tokens", 0) > 0,
            "text": message.text,
            "tokens": f"{usage.get('input_tokens')}/{usage.get('output_tokens')}",
            "cost": find_cost(metadata) or headers.get("x-request-cost"),
        }
        print(f"{'PASS' if row['ok'] else 'FAIL'} {label}: {message.text!r}")
        print(f"  usage_metadata: {json.dumps(usage)}")
        print(f"  response_metadata: {json.dumps(metadata, default=str)}")
    except openai.APIStatusError as error:  # what was sent and what came back
        row |= {"ok": False, "status": error.status_code, "error": error.response.text[:300]}
        print(f"FAIL {label}: {type(error).__name__}: {error.status_code} from {error.request.url}")
        print(f"  sent: {error.request.content.decode(errors='replace')}")
        print(f"  got: {error.response.text}")
    except Exception as error:
        row |= {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
        print(f"FAIL {label}: {type(error).__name__}: {error}")
    with open(os.environ["SMOKE_RESULTS"], "a") as results:
        results.write(json.dumps(row, default=str) + "\n")
