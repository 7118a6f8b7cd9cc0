"""Replay: read recorded topics by time, for exports, sandboxes and backtests."""
