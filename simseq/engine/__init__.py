"""Numba kernels only: arrays in, arrays out; no I/O, pandas, pydantic or logging."""
