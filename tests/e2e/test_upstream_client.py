"""`[server] upstream_client = "aiohttp" | "httpx"`: the other clients bill to the same nano-dollar.

The default, the lean client, is what every other end-to-end test forwards with.
"""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.dbs import drop_database, new_database_url
from tests.e2e.conftest import MODELS, Mock, Tollway, config_text, free_port, launch, nanos, price_text, shut
from tests.e2e.test_billing import balance_nano
from tests.e2e.test_billing_races import debits

HI = [{"role": "user", "content": "Say hi"}]
WORDS = " the of and to in is it for"


@pytest.mark.parametrize(("client_name", "user_agent"), [("httpx", "python-httpx/"), ("aiohttp", "Python/")])
def test_the_other_clients_forward_streams_and_bill_alike(
    mock: Mock, tmp_path: Path, client_name: str, user_agent: str
) -> None:
    database_url = new_database_url(tmp_path)
    (tmp_path / "database_url").write_text(database_url)
    config = config_text(mock.url, free_port(), database_url)
    (tmp_path / "tollway.toml").write_text(
        config.replace("[server]\n", f'[server]\nupstream_client = "{client_name}"\n', 1)
    )
    (tmp_path / "prices").mkdir()
    (tmp_path / "prices" / "test.toml").write_text(price_text(MODELS))
    server, process = launch(mock, tmp_path)
    try:
        account = server.new_account(f"{client_name}-client", credit_usd="1.00")
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=account.key, max_retries=0)
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
        assert completion.choices[0].message.content == WORDS
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True))  # type: ignore[call-overload]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == WORDS
        assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (6, 8)
        assert debits(server, account.workspace_id) == [-nanos(6, 8), -nanos(6, 8)]
        assert balance_nano(server, account) == 1_000_000_000 - 2 * nanos(6, 8)
        headers = mock.last_request()["headers"]
        assert isinstance(headers, dict) and headers["user-agent"].startswith(user_agent)
    finally:
        shut(server, process)
        drop_database(database_url)


def test_the_default_client_is_tollways_own(tollway: Tollway, mock: Mock, key: str) -> None:
    client = openai.OpenAI(base_url=f"{tollway.url}/v1", api_key=key, max_retries=0)
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == WORDS
    headers = mock.last_request()["headers"]
    assert isinstance(headers, dict) and headers["user-agent"] == "tollway/0.1.0"
    assert headers["accept-encoding"] == "identity"
