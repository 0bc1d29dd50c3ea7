"""QStash API adapter (the official SDK)."""
