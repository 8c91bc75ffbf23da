"""Shared test support: helpers that build real parts and read back what the box wrote.

Not a test module; import from the submodules (`from support.pdf import pdf_words`).
"""
