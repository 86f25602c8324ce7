"""Deployment: frozen models, counters (SPEC E18-E20), golden vectors."""
