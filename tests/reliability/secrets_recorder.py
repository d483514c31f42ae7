"""Run `alura-bot ARGS...` while recording every secret the simulator's auth sees or issues.

    python tests/reliability/secrets_recorder.py OUT.jsonl demo --key-file K ...

Wraps `bot.sim.accounts.Accounts.verify` (the simulator that the demo runs in-process) so that
each login appends `{"signature": ..., "token": ...}` to OUT.jsonl: the signature the bot sent to
/auth/evm/verify and the JWT it got back. The leak test then greps everything the run left
behind for exactly those strings. Nothing else about the command changes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def main() -> None:
    out = Path(sys.argv[1])
    from bot.sim.accounts import Accounts

    original = Accounts.verify

    def recording_verify(self: Accounts, address: Any, signature: Any, **kw: Any) -> Any:
        grant = original(self, address, signature, **kw)
        with out.open("a") as fh:
            fh.write(json.dumps({"signature": signature, "token": grant["accessToken"]}) + "\n")
        return grant

    Accounts.verify = recording_verify  # type: ignore[method-assign]
    sys.argv = ["alura-bot", *sys.argv[2:]]
    from bot.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
