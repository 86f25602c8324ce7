"""Neurons of the HD-LIF family (SPEC E1-E10): step functions, fused multi-step modules."""
