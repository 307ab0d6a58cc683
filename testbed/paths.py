"""Where the test bed finds the repository's files: deploy/ manifests and the Go peers tests/peers/bin builds."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
PEERS_BIN = REPO / "tests" / "peers" / "bin"  # scripts/go-peers.sh builds here (ignored by git)
