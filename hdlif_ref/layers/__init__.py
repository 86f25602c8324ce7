"""Modules and layers: Module system, synapses, pooling, batch norm, SECA, model builders."""
