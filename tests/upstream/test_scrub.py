from tollway.upstream.scrub import Scrubber

SECRET = "sk-proj-AbCdEfGh1234567890ZyXwVuTs"


def test_whole_and_partial_secrets_are_removed() -> None:
    scrub = Scrubber([SECRET])
    body = f'{{"error": {{"message": "Incorrect API key provided: {SECRET}. Also sk-proj-AbCd****VuTs"}}}}'
    cleaned = scrub(body.encode()).decode()
    assert SECRET not in cleaned
    assert "AbCdEfGh" not in cleaned
    assert "Incorrect API key provided: [redacted]" in cleaned


def test_unrelated_text_is_untouched() -> None:
    scrub = Scrubber([SECRET])
    body = b'{"error": {"message": "model_not_found: gpt-4o-mini-2024"}}'
    assert scrub(body) == body


def test_no_secrets_is_identity() -> None:
    assert Scrubber([])(b"anything") == b"anything"
