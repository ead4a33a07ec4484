"""The request-latency discrete-event simulator (DES_MODEL.md) as a plain library."""
