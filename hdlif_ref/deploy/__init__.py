"""Deployment: frozen models, counters (SPEC E18-E20). Golden vectors and verify: :mod:`hdlif_ref.oracle`."""
