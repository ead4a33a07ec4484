"""The fleet lifecycle agent model (LIFECYCLE_MODEL.md) as a plain library: inputs, backends, MP2 output."""
