"""An OpenAI-compatible fake chat model server for tests, demos and benchmarks of tollway.

Behaviour is chosen per request by knobs in the model name (`demo:chunks=64,usage=absent`) or in a
`mock` object in the request body; see `behaviour.Behaviour` for the list.
"""

from tollway.mock_upstream.app import MockUpstream, create_app
from tollway.mock_upstream.server import HideScriptedCuts, quiet_scripted_cuts, run

__all__ = ["HideScriptedCuts", "MockUpstream", "create_app", "quiet_scripted_cuts", "run"]
