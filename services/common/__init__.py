"""Plumbing both services share: database engines, gRPC server and client setup,
status mapping and the idempotent use-case runner."""
