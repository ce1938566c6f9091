"""Readable pure-Python / NumPy references of the compiled kernels.

Each module mirrors one topic of ``fastregen._core`` (``textio``, ...). They
are the test oracles (the tests check the fast paths agree with them exactly)
and a CPU fallback that needs no compiler. Import the module you need,
``from fastregen.reference import textio``; this package imports nothing on
its own so that importing one reference never pulls in another.
"""
