"""`[server] upstream_client = "httpx"`: the other forwarding client bills to the same nano-dollar."""

from __future__ import annotations

from pathlib import Path

import openai

from tests.dbs import drop_database, new_database_url
from tests.e2e.conftest import MODELS, Mock, config_text, free_port, launch, nanos, price_text, shut
from tests.e2e.test_billing import balance_nano
from tests.e2e.test_billing_races import debits

HI = [{"role": "user", "content": "Say hi"}]
WORDS = " the of and to in is it for"


def test_the_httpx_client_forwards_streams_and_bills_alike(mock: Mock, tmp_path: Path) -> None:
    database_url = new_database_url(tmp_path)
    (tmp_path / "database_url").write_text(database_url)
    config = config_text(mock.url, free_port(), database_url)
    (tmp_path / "tollway.toml").write_text(
        config.replace("[server]\n", '[server]\nupstream_client = "httpx"\n', 1)
    )
    (tmp_path / "prices").mkdir()
    (tmp_path / "prices" / "test.toml").write_text(price_text(MODELS))
    server, process = launch(mock, tmp_path)
    try:
        account = server.new_account("httpx-client", credit_usd="1.00")
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=account.key, max_retries=0)
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=HI)  # type: ignore[arg-type]
        assert completion.choices[0].message.content == WORDS
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True))  # type: ignore[call-overload]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == WORDS
        assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (6, 8)
        assert debits(server, account.workspace_id) == [-nanos(6, 8), -nanos(6, 8)]
        assert balance_nano(server, account) == 1_000_000_000 - 2 * nanos(6, 8)
        headers = mock.last_request()["headers"]
        assert isinstance(headers, dict) and headers["user-agent"].startswith("python-httpx/")
    finally:
        shut(server, process)
        drop_database(database_url)
